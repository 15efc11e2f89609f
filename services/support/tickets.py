"""Tickets: open, read, list, move and reprioritise.

A user opens tickets for themself (an ADMIN for anyone) and reads only their
own; anyone else's is "not found", so ids cannot be probed. ADMINs are
support staff: they read everything and make every move the status machine
(domain.py) allows. A ticket's state change and its event are written in one
transaction; moves of one ticket serialize on its row lock.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

from google.protobuf.message import Message
from warmhouse.support.v1 import support_pb2

from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.errors import DomainError, NotFound, PermissionDenied
from services.runtime.idempotency import IdempotencyKey
from services.runtime.pagination import Cursor, PageTokens, page_size
from services.runtime.quotas import check_quota
from services.runtime.request import parse_uuid
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import Transaction, UnitOfWork, run_idempotently
from services.support import domain
from services.support.domain import CLOSED, OPEN, Actor, Deadlines, Limits
from services.support.records import TicketRecord
from services.support.repository import SupportRepository

# Writes an event to the outbox in the caller's transaction.
AddEvent = Callable[[Message], Awaitable[object]]


def ticket_not_found() -> NotFound:
    # Also for another user's ticket: ids cannot be probed.
    return NotFound("TICKET_NOT_FOUND", "no such ticket")


def may_see(caller: Caller, ticket: TicketRecord) -> bool:
    return caller.is_admin or caller.user_id == str(ticket.user_id)


def _id(value: uuid.UUID | None) -> str:
    return str(value) if value is not None else ""


def ticket_message(ticket: TicketRecord) -> support_pb2.Ticket:
    message = support_pb2.Ticket(
        ticket_id=str(ticket.id),
        user_id=str(ticket.user_id),
        subject=ticket.subject,
        description=ticket.description,
        status=support_pb2.TicketStatus.Value(ticket.status),
        priority=support_pb2.TicketPriority.Value(ticket.priority),
        space_id=_id(ticket.space_id),
        device_id=_id(ticket.device_id),
        create_time=timestamp(ticket.created_at),
        update_time=timestamp(ticket.updated_at),
        first_response_due_time=timestamp(ticket.first_response_due_at),
        sla_breached=ticket.sla_breached,
    )
    if ticket.first_response_at is not None:
        message.first_response_time.CopyFrom(timestamp(ticket.first_response_at))
    return message


def new_ticket(
    user_id: uuid.UUID,
    subject: str,
    description: str,
    priority: str,
    space_id: uuid.UUID | None,
    device_id: uuid.UUID | None,
    deadlines: Deadlines,
    now: datetime,
) -> TicketRecord:
    return TicketRecord(
        id=uuid.uuid4(),
        user_id=user_id,
        subject=subject,
        description=description,
        status=OPEN,
        priority=priority,
        space_id=space_id,
        device_id=device_id,
        first_response_due_at=deadlines.due(priority, now),
        created_at=now,
        updated_at=now,
    )


async def open_ticket(repos: SupportRepository, add_event: AddEvent, ticket: TicketRecord) -> None:
    """Store a new ticket and publish its TicketOpened."""
    await repos.add_ticket(ticket)
    await add_event(
        support_pb2.TicketOpened(
            ticket_id=str(ticket.id),
            user_id=str(ticket.user_id),
            subject=ticket.subject,
            occur_time=timestamp(ticket.created_at),
            priority=support_pb2.TicketPriority.Value(ticket.priority),
            space_id=_id(ticket.space_id),
            device_id=_id(ticket.device_id),
            first_response_due_time=timestamp(ticket.first_response_due_at),
        )
    )


async def status_changed(
    add_event: AddEvent, before: TicketRecord, after: TicketRecord, actor_id: str
) -> None:
    """Publish the move before → after (actor_id "" for the platform)."""
    await add_event(
        support_pb2.TicketStatusChanged(
            ticket_id=str(after.id),
            user_id=str(after.user_id),
            old_status=support_pb2.TicketStatus.Value(before.status),
            new_status=support_pb2.TicketStatus.Value(after.status),
            occur_time=timestamp(after.updated_at),
            actor_id=actor_id,
            subject=after.subject,
        )
    )


async def sla_breached(add_event: AddEvent, ticket: TicketRecord, now: datetime) -> None:
    await add_event(
        support_pb2.TicketSlaBreached(
            ticket_id=str(ticket.id),
            user_id=str(ticket.user_id),
            priority=support_pb2.TicketPriority.Value(ticket.priority),
            first_response_due_time=timestamp(ticket.first_response_due_at),
            occur_time=timestamp(now),
        )
    )


def _optional_id(value: str, field: str) -> uuid.UUID | None:
    return parse_uuid(value, field) if value else None


DEFAULT_LIMITS = Limits()


class TicketHandlers:
    def __init__(
        self,
        uow: UnitOfWork[SupportRepository],
        page_tokens: PageTokens,
        deadlines: Deadlines,
        clock: Clock = utc_now,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._uow = uow
        self._page_tokens = page_tokens
        self._deadlines = deadlines
        self._clock = clock
        self._limits = limits

    async def create(
        self,
        caller: Caller,
        key: IdempotencyKey | None,
        request: support_pb2.CreateTicketRequest,
        priority: str | None,
    ) -> support_pb2.CreateTicketResponse:
        """Open a ticket; `priority` is the request's by name, None when unspecified."""
        user_id = parse_uuid(request.user_id, "userId") if request.user_id else caller.user_uuid
        if not caller.is_admin and str(user_id) != caller.user_id:
            raise PermissionDenied("NOT_OWNER", "you may only open tickets for yourself")
        subject = domain.subject_text(request.subject)
        description = domain.long_text(request.description, "description")
        chosen = domain.priority_or_default(priority)
        if not caller.is_admin:
            chosen = domain.chosen_by_user(chosen)
        space_id = _optional_id(request.space_id, "spaceId")
        device_id = _optional_id(request.device_id, "deviceId")

        async def create(
            tx: Transaction[SupportRepository],
        ) -> support_pb2.CreateTicketResponse:
            now = self._clock()
            if not caller.is_admin:
                check_quota(
                    await tx.repos.count_open_tickets(user_id),
                    self._limits.open_tickets_per_user,
                    "open tickets per user: close one first",
                )
            await _check_links(tx.repos, user_id, space_id, device_id, now)
            ticket = new_ticket(
                user_id, subject, description, chosen, space_id, device_id, self._deadlines, now
            )
            await open_ticket(tx.repos, tx.add_event, ticket)
            return support_pb2.CreateTicketResponse(
                ticket_id=str(ticket.id), status=support_pb2.OPEN
            )

        return await run_idempotently(
            self._uow, key, request, support_pb2.CreateTicketResponse, create
        )

    async def get(self, caller: Caller, ticket_id: str) -> TicketRecord:
        ticket_uuid = parse_uuid(ticket_id, "ticketId")
        async with self._uow.read() as repos:
            ticket = await repos.ticket(ticket_uuid)
        if ticket is None or not may_see(caller, ticket):
            raise ticket_not_found()
        return ticket

    async def list_tickets(
        self,
        caller: Caller,
        user_id: str,
        status: str | None,
        priority: str | None,
        requested_size: int,
        page_token: str,
    ) -> tuple[list[TicketRecord], str]:
        owner = parse_uuid(user_id, "userId") if user_id else None
        if not caller.is_admin:
            if owner is not None and str(owner) != caller.user_id:
                raise PermissionDenied("NOT_OWNER", "you may only list your own tickets")
            owner = caller.user_uuid
        limit = page_size(requested_size)
        listing = f"tickets:{owner}:{status}:{priority}"
        cursor = self._page_tokens.decode(page_token, listing=listing)
        async with self._uow.read() as repos:
            rows = await repos.tickets(owner, status, priority, cursor, limit + 1)
        return self._page_tokens.page(
            rows, limit, lambda t: Cursor(t.created_at, t.id), listing=listing
        )

    async def update(
        self, caller: Caller, ticket_id: str, status: str | None, priority: str | None
    ) -> TicketRecord:
        """Move the ticket to `status` and/or set its `priority` (None: leave as is)."""
        ticket_uuid = parse_uuid(ticket_id, "ticketId")
        new_status = domain.known_status(status) if status is not None else None
        new_priority = domain.known_priority(priority) if priority is not None else None
        actor = Actor.ADMIN if caller.is_admin else Actor.AUTHOR
        async with self._uow.transaction() as tx:
            ticket = await tx.repos.ticket(ticket_uuid, lock=True)
            if ticket is None or not may_see(caller, ticket):
                raise ticket_not_found()
            reprioritise = new_priority is not None and new_priority != ticket.priority
            if reprioritise:
                caller.require_admin()
                if ticket.status == CLOSED:
                    raise DomainError("TICKET_CLOSED", "a CLOSED ticket cannot change")
            move = new_status is not None and domain.check_move(actor, ticket.status, new_status)
            if not (reprioritise or move):
                return ticket
            now = self._clock()
            updated = replace(ticket, updated_at=now)
            if reprioritise and new_priority is not None:
                updated = replace(updated, priority=new_priority)
                if ticket.first_response_at is None:
                    due = self._deadlines.due(new_priority, ticket.created_at)
                    updated = replace(updated, first_response_due_at=due)
            if move and new_status is not None:
                updated = replace(updated, status=new_status)
            await tx.repos.save_ticket(updated)
            if move:
                await status_changed(tx.add_event, ticket, updated, caller.user_id)
            return updated


async def _check_links(
    repos: SupportRepository,
    user_id: uuid.UUID,
    space_id: uuid.UUID | None,
    device_id: uuid.UUID | None,
    now: datetime,
) -> None:
    """The space and device a ticket names must be ones its user can see;
    any other is "not found", whether it exists or not."""
    if space_id is not None and not await repos.sees_space(user_id, space_id, now):
        raise NotFound("SPACE_NOT_FOUND", "no such space")
    if device_id is not None:
        place = await repos.device_place(device_id)
        if place is None or not await repos.sees_space(user_id, place.space_id, now):
            raise NotFound("DEVICE_NOT_FOUND", "no such device")
