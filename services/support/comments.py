"""A ticket's conversation: comments by its user and support staff, and
ADMINs' internal notes, which the ticket's user never sees.

A comment may move its ticket: the user's comment on a RESOLVED ticket
reopens it, and support's first answer (an ADMIN's comment that is not an
internal note, on someone else's ticket) stops the SLA clock.
"""

import uuid
from dataclasses import replace
from datetime import datetime

from warmhouse.support.v1 import support_pb2

from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.errors import DomainError, PermissionDenied
from services.runtime.idempotency import IdempotencyKey
from services.runtime.pagination import Cursor, PageTokens, page_size
from services.runtime.quotas import check_quota
from services.runtime.request import parse_uuid
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import Transaction, UnitOfWork, run_idempotently
from services.support import domain
from services.support.domain import CLOSED, OPEN, Limits
from services.support.records import CommentRecord, TicketRecord
from services.support.repository import SupportRepository
from services.support.tickets import (
    DEFAULT_LIMITS,
    AddEvent,
    may_see,
    sla_breached,
    status_changed,
    ticket_not_found,
)


def comment_message(comment: CommentRecord) -> support_pb2.Comment:
    return support_pb2.Comment(
        comment_id=str(comment.id),
        ticket_id=str(comment.ticket_id),
        author_id=str(comment.author_id) if comment.author_id is not None else "",
        message=comment.message,
        create_time=timestamp(comment.created_at),
        internal=comment.internal,
    )


async def add_comment(
    repos: SupportRepository, add_event: AddEvent, ticket: TicketRecord, comment: CommentRecord
) -> None:
    """Store a comment on `ticket` and publish its TicketCommentAdded."""
    await repos.add_comment(comment)
    await add_event(
        support_pb2.TicketCommentAdded(
            ticket_id=str(ticket.id),
            user_id=str(ticket.user_id),
            comment_id=str(comment.id),
            author_id=str(comment.author_id) if comment.author_id is not None else "",
            occur_time=timestamp(comment.created_at),
            internal=comment.internal,
            subject=ticket.subject,
        )
    )


def answered(ticket: TicketRecord, now: datetime) -> TicketRecord:
    """The ticket after support's first answer at `now`: late if after its due time."""
    late = ticket.sla_breached or now > ticket.first_response_due_at
    return replace(ticket, first_response_at=now, sla_breached=late, updated_at=now)


class CommentHandlers:
    def __init__(
        self,
        uow: UnitOfWork[SupportRepository],
        page_tokens: PageTokens,
        clock: Clock = utc_now,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._uow = uow
        self._page_tokens = page_tokens
        self._clock = clock
        self._limits = limits

    async def create(
        self,
        caller: Caller,
        key: IdempotencyKey | None,
        request: support_pb2.CreateCommentRequest,
    ) -> support_pb2.CreateCommentResponse:
        ticket_uuid = parse_uuid(request.ticket_id, "ticketId")
        if request.internal and not caller.is_admin:
            raise PermissionDenied(
                "INTERNAL_NOTE_NOT_ALLOWED", "only support staff may add an internal note"
            )
        message = domain.long_text(request.message, "message")
        author = caller.user_uuid

        async def comment(
            tx: Transaction[SupportRepository],
        ) -> support_pb2.CreateCommentResponse:
            ticket = await tx.repos.ticket(ticket_uuid, lock=True)
            if ticket is None or not may_see(caller, ticket):
                raise ticket_not_found()
            if ticket.status == CLOSED:
                raise DomainError("TICKET_CLOSED", "a CLOSED ticket takes no more comments")
            if not caller.is_admin:
                check_quota(
                    await tx.repos.count_comments(ticket.id),
                    self._limits.comments_per_ticket,
                    "comments per ticket",
                )
            now = self._clock()
            added = CommentRecord(uuid.uuid4(), ticket.id, author, message, request.internal, now)
            await add_comment(tx.repos, tx.add_event, ticket, added)
            await self._follow_up(tx, caller, ticket, added, now)
            return support_pb2.CreateCommentResponse(comment=comment_message(added))

        return await run_idempotently(
            self._uow, key, request, support_pb2.CreateCommentResponse, comment
        )

    async def _follow_up(
        self,
        tx: Transaction[SupportRepository],
        caller: Caller,
        ticket: TicketRecord,
        comment: CommentRecord,
        now: datetime,
    ) -> None:
        """What the comment does to its ticket: reopen it, or stop its SLA clock."""
        updated = ticket
        is_author = caller.user_id == str(ticket.user_id)
        if domain.reopens(ticket.status, author=is_author, admin=caller.is_admin):
            updated = replace(updated, status=OPEN, updated_at=now)
        first_answer = updated.first_response_at is None and domain.is_first_response(
            caller.user_id, str(ticket.user_id), admin=caller.is_admin, internal=comment.internal
        )
        if first_answer:
            updated = answered(updated, now)
        if updated == ticket:
            return
        await tx.repos.save_ticket(updated)
        if updated.status != ticket.status:
            await status_changed(tx.add_event, ticket, updated, caller.user_id)
        if updated.sla_breached and not ticket.sla_breached:
            # The answer came late before the SLA sweep noticed: the breach is
            # announced here instead, so still exactly once.
            await sla_breached(tx.add_event, updated, now)

    async def list_comments(
        self, caller: Caller, ticket_id: str, requested_size: int, page_token: str
    ) -> tuple[list[CommentRecord], str]:
        ticket_uuid = parse_uuid(ticket_id, "ticketId")
        limit = page_size(requested_size)
        # Staff and users page through different lists (with and without notes).
        internal = caller.is_admin
        listing = f"comments:{ticket_uuid}:{internal}"
        cursor = self._page_tokens.decode(page_token, listing=listing)
        async with self._uow.read() as repos:
            ticket = await repos.ticket(ticket_uuid)
            if ticket is None or not may_see(caller, ticket):
                raise ticket_not_found()
            rows = await repos.comments(
                ticket_uuid, internal=internal, after=cursor, limit=limit + 1
            )
        return self._page_tokens.page(
            rows, limit, lambda c: Cursor(c.created_at, c.id), listing=listing
        )
