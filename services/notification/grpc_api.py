"""NotificationService over gRPC: proto in → handler → proto out."""

from warmhouse.notification.v1 import notification_pb2, notification_pb2_grpc

from services.notification.handlers import NotificationHandlers, notification_message
from services.runtime.auth import current_caller
from services.runtime.grpc_types import ServicerContext


class NotificationService(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, handlers: NotificationHandlers) -> None:
        self._handlers = handlers

    async def ListNotifications(
        self, request: notification_pb2.ListNotificationsRequest, context: ServicerContext
    ) -> notification_pb2.ListNotificationsResponse:
        notifications, next_token = await self._handlers.list_notifications(
            current_caller(),
            request.user_id,
            request.unread_only,
            request.page_size,
            request.page_token,
        )
        return notification_pb2.ListNotificationsResponse(
            notifications=[notification_message(n) for n in notifications],
            next_page_token=next_token,
        )

    async def MarkNotificationRead(
        self, request: notification_pb2.MarkNotificationReadRequest, context: ServicerContext
    ) -> notification_pb2.MarkNotificationReadResponse:
        notification = await self._handlers.mark_read(current_caller(), request.notification_id)
        return notification_pb2.MarkNotificationReadResponse(
            notification=notification_message(notification)
        )

    async def GetNotificationPreferences(
        self, request: notification_pb2.GetNotificationPreferencesRequest, context: ServicerContext
    ) -> notification_pb2.GetNotificationPreferencesResponse:
        preferences = await self._handlers.get_preferences(current_caller(), request.user_id)
        return notification_pb2.GetNotificationPreferencesResponse(preferences=preferences)

    async def UpdateNotificationPreferences(
        self,
        request: notification_pb2.UpdateNotificationPreferencesRequest,
        context: ServicerContext,
    ) -> notification_pb2.UpdateNotificationPreferencesResponse:
        preferences = await self._handlers.update_preferences(
            current_caller(), request.user_id, request.preferences
        )
        return notification_pb2.UpdateNotificationPreferencesResponse(preferences=preferences)
