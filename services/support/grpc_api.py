"""SupportService over gRPC: proto in → handler → proto out."""

from warmhouse.support.v1 import support_pb2, support_pb2_grpc

from services.runtime import idempotency
from services.runtime.auth import current_caller
from services.runtime.errors import InvalidArgument
from services.runtime.grpc_types import ServicerContext
from services.runtime.request import enum_name
from services.support.comments import CommentHandlers, comment_message
from services.support.description import SUPPORT_SERVICE
from services.support.tickets import TicketHandlers, ticket_message

CREATE_TICKET = f"/{SUPPORT_SERVICE}/CreateTicket"
CREATE_COMMENT = f"/{SUPPORT_SERVICE}/CreateComment"


def _status(value: int) -> str:
    return enum_name(support_pb2.TicketStatus.DESCRIPTOR, value)


def _priority(value: int) -> str:
    return enum_name(support_pb2.TicketPriority.DESCRIPTOR, value)


def status_filter(value: int) -> str | None:
    """A listing's status filter: None for all; a number no status has is refused."""
    if value == support_pb2.TICKET_STATUS_UNSPECIFIED:
        return None
    name = _status(value)
    if not name:
        raise InvalidArgument(
            "INVALID_STATUS", "status must be OPEN, IN_PROGRESS, RESOLVED or CLOSED"
        )
    return name


def priority_filter(value: int) -> str | None:
    if value == support_pb2.TICKET_PRIORITY_UNSPECIFIED:
        return None
    name = _priority(value)
    if not name:
        raise InvalidArgument("INVALID_PRIORITY", "priority must be LOW, NORMAL, HIGH or URGENT")
    return name


class SupportService(support_pb2_grpc.SupportServiceServicer):
    def __init__(self, tickets: TicketHandlers, comments: CommentHandlers) -> None:
        self._tickets = tickets
        self._comments = comments

    async def CreateTicket(
        self, request: support_pb2.CreateTicketRequest, context: ServicerContext
    ) -> support_pb2.CreateTicketResponse:
        caller = current_caller()
        key = idempotency.key_of(context, "", caller.user_id, CREATE_TICKET)
        unspecified = request.priority == support_pb2.TICKET_PRIORITY_UNSPECIFIED
        priority = None if unspecified else _priority(request.priority)
        return await self._tickets.create(caller, key, request, priority)

    async def GetTicket(
        self, request: support_pb2.GetTicketRequest, context: ServicerContext
    ) -> support_pb2.GetTicketResponse:
        ticket = await self._tickets.get(current_caller(), request.ticket_id)
        return support_pb2.GetTicketResponse(ticket=ticket_message(ticket))

    async def ListTickets(
        self, request: support_pb2.ListTicketsRequest, context: ServicerContext
    ) -> support_pb2.ListTicketsResponse:
        tickets, next_token = await self._tickets.list_tickets(
            current_caller(),
            request.user_id,
            status_filter(request.status),
            priority_filter(request.priority),
            request.page_size,
            request.page_token,
        )
        return support_pb2.ListTicketsResponse(
            tickets=[ticket_message(ticket) for ticket in tickets], next_page_token=next_token
        )

    async def UpdateTicket(
        self, request: support_pb2.UpdateTicketRequest, context: ServicerContext
    ) -> support_pb2.UpdateTicketResponse:
        # A field sent as UNSPECIFIED (or an unknown number) is refused by the domain.
        status = _status(request.status) if request.HasField("status") else None
        priority = _priority(request.priority) if request.HasField("priority") else None
        ticket = await self._tickets.update(current_caller(), request.ticket_id, status, priority)
        return support_pb2.UpdateTicketResponse(ticket=ticket_message(ticket))

    async def CreateComment(
        self, request: support_pb2.CreateCommentRequest, context: ServicerContext
    ) -> support_pb2.CreateCommentResponse:
        caller = current_caller()
        key = idempotency.key_of(context, "", caller.user_id, CREATE_COMMENT)
        return await self._comments.create(caller, key, request)

    async def ListComments(
        self, request: support_pb2.ListCommentsRequest, context: ServicerContext
    ) -> support_pb2.ListCommentsResponse:
        comments, next_token = await self._comments.list_comments(
            current_caller(), request.ticket_id, request.page_size, request.page_token
        )
        return support_pb2.ListCommentsResponse(
            comments=[comment_message(comment) for comment in comments],
            next_page_token=next_token,
        )
