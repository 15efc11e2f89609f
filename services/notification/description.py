"""The Notification service: what it serves and the gateway keys only it holds."""

from warmhouse.notification.v1 import notification_pb2

from services.runtime.service import ServiceDescription

NOTIFICATION_SERVICE = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name
SMS_API_KEY_ENV = "WARMHOUSE_NOTIFICATION_SMS_API_KEY_FILE"
PUSH_API_KEY_ENV = "WARMHOUSE_NOTIFICATION_PUSH_API_KEY_FILE"
# The SMTP relay's password (used with WARMHOUSE_NOTIFICATION_SMTP_USERNAME;
# the local stack's sink asks for none).
SMTP_PASSWORD_ENV = "WARMHOUSE_NOTIFICATION_SMTP_PASSWORD_FILE"

DESCRIPTION = ServiceDescription(
    name="notification",
    grpc_services=(NOTIFICATION_SERVICE,),
    # Shared with the SMS and push gateways (the local stack runs their sandbox).
    secret_files={
        SMS_API_KEY_ENV: "sms-gateway-api-key",
        PUSH_API_KEY_ENV: "push-gateway-api-key",
        SMTP_PASSWORD_ENV: "smtp-password",
    },
    # The SMTP server and the SMS and push gateways.
    reaches_outside=True,
)
