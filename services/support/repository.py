"""Support's queries on PostgreSQL, compiled once, and what it asks the home directory."""

import uuid
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import bindparam, select, text, update

from services.runtime import home_directory
from services.runtime.database import Connection, Query, Record
from services.runtime.home_directory import DevicePlace
from services.runtime.pagination import Cursor
from services.support.records import CommentRecord, EpisodeRecord, TicketRecord
from services.support.tables import comments, hazard_episodes, tickets

_ADD_TICKET = Query(tickets.insert())
_TICKET = tickets.c.id == bindparam("id")
_GET_TICKET = Query(select(tickets).where(_TICKET))
# Moves of one ticket serialize on its row.
_LOCK_TICKET = Query(select(tickets).where(_TICKET).with_for_update())
_SAVE_TICKET = Query(
    update(tickets)
    .where(tickets.c.id == bindparam("ticket_id"))
    .values(
        status=bindparam("status"),
        priority=bindparam("priority"),
        first_response_due_at=bindparam("first_response_due_at"),
        first_response_at=bindparam("first_response_at"),
        sla_breached=bindparam("sla_breached"),
        updated_at=bindparam("updated_at"),
    )
)
# Marks each late ticket once: a ticket another sweep (another replica) holds
# is skipped, and one it has marked no longer matches `NOT sla_breached`.
_MARK_BREACHED = Query(
    text(
        "UPDATE tickets SET sla_breached = true, updated_at = :now WHERE id IN ("
        " SELECT id FROM tickets WHERE status IN ('OPEN', 'IN_PROGRESS')"
        " AND first_response_at IS NULL AND NOT sla_breached AND first_response_due_at <= :now"
        " ORDER BY first_response_due_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
        " AND first_response_at IS NULL AND NOT sla_breached RETURNING *"
    )
)
_ADD_COMMENT = Query(comments.insert())
_COMMENT_LISTINGS = {
    (internal, after): Query(
        text(
            "SELECT * FROM comments WHERE ticket_id = :ticket_id"
            + ("" if internal else " AND NOT internal")
            + (" AND (created_at, id) > (:created_at, :id)" if after else "")
            + " ORDER BY created_at, id LIMIT :limit"
        )
    )
    for internal in (False, True)
    for after in (False, True)
}
_ADD_EPISODE = Query(hazard_episodes.insert())
_OPEN_EPISODE = Query(
    text(
        "SELECT * FROM hazard_episodes WHERE device_id = :device_id AND hazard = :hazard"
        " AND cleared_at IS NULL"
    )
)
_LAST_CLEARED = Query(
    text(
        "SELECT max(cleared_at) FROM hazard_episodes"
        " WHERE device_id = :device_id AND hazard = :hazard"
    )
)
_CLEAR_EPISODE = Query(text("UPDATE hazard_episodes SET cleared_at = :cleared_at WHERE id = :id"))
# One event of a device's hazard at a time (two replicas, two deliveries).
# Keyed by the user's id as text: two tickets opened at once are counted in turn.
_HOLD_USER = Query(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"))
_COUNT_OPEN_TICKETS = Query(
    text(
        "SELECT count(*) FROM tickets WHERE user_id = :user_id"
        " AND status IN ('OPEN', 'IN_PROGRESS')"
    )
)
_COUNT_COMMENTS = Query(text("SELECT count(*) FROM comments WHERE ticket_id = :ticket_id"))
_HOLD_HAZARD = Query(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"))


def _ticket_listing(*, by_user: bool, by_status: bool, by_priority: bool, after: bool) -> Query:
    conditions = [
        *(["user_id = :user_id"] if by_user else []),
        *(["status = :status"] if by_status else []),
        *(["priority = :priority"] if by_priority else []),
        *(["(created_at, id) < (:created_at, :id)"] if after else []),
    ]
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return Query(
        text(f"SELECT * FROM tickets{where} ORDER BY created_at DESC, id DESC LIMIT :limit")
    )


_TICKET_LISTINGS = {
    (user, status, priority, after): _ticket_listing(
        by_user=user, by_status=status, by_priority=priority, after=after
    )
    for user in (False, True)
    for status in (False, True)
    for priority in (False, True)
    for after in (False, True)
}
_TICKET_FIELDS = tuple(column.name for column in tickets.columns)
_COMMENT_FIELDS = tuple(column.name for column in comments.columns)
_EPISODE_FIELDS = tuple(column.name for column in hazard_episodes.columns)


def _ticket(row: Record) -> TicketRecord:
    return TicketRecord(**{name: row[name] for name in _TICKET_FIELDS})


def _comment(row: Record) -> CommentRecord:
    return CommentRecord(**{name: row[name] for name in _COMMENT_FIELDS})


def _episode(row: Record) -> EpisodeRecord:
    return EpisodeRecord(**{name: row[name] for name in _EPISODE_FIELDS})


class SupportRepository:
    """Every query of the service, on one connection (and its transaction)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # Tickets.

    async def add_ticket(self, ticket: TicketRecord) -> None:
        await self._connection.execute(_ADD_TICKET, **asdict(ticket))

    async def count_open_tickets(self, user_id: uuid.UUID) -> int:
        """Under a lock on the user, held to the end of the transaction."""
        await self._connection.execute(_HOLD_USER, key=f"support-user:{user_id}")
        count: int = await self._connection.fetchval(_COUNT_OPEN_TICKETS, user_id=user_id)
        return count

    async def count_comments(self, ticket_id: uuid.UUID) -> int:
        count: int = await self._connection.fetchval(_COUNT_COMMENTS, ticket_id=ticket_id)
        return count

    async def ticket(self, ticket_id: uuid.UUID, *, lock: bool = False) -> TicketRecord | None:
        row = await self._connection.fetchrow(_LOCK_TICKET if lock else _GET_TICKET, id=ticket_id)
        return _ticket(row) if row is not None else None

    async def save_ticket(self, ticket: TicketRecord) -> None:
        await self._connection.execute(
            _SAVE_TICKET,
            ticket_id=ticket.id,
            status=ticket.status,
            priority=ticket.priority,
            first_response_due_at=ticket.first_response_due_at,
            first_response_at=ticket.first_response_at,
            sla_breached=ticket.sla_breached,
            updated_at=ticket.updated_at,
        )

    async def tickets(
        self,
        user_id: uuid.UUID | None,
        status: str | None,
        priority: str | None,
        after: Cursor | None,
        limit: int,
    ) -> list[TicketRecord]:
        params: dict[str, object] = {"limit": limit}
        if user_id is not None:
            params["user_id"] = user_id
        if status is not None:
            params["status"] = status
        if priority is not None:
            params["priority"] = priority
        if after is not None:
            params["created_at"], params["id"] = after.created_at, after.id
        query = _TICKET_LISTINGS[
            (user_id is not None, status is not None, priority is not None, after is not None)
        ]
        return [_ticket(row) for row in await self._connection.fetch(query, **params)]

    async def mark_breached(self, now: datetime, limit: int) -> list[TicketRecord]:
        """Tickets whose first answer is late, marked breached now (each only once)."""
        rows = await self._connection.fetch(_MARK_BREACHED, now=now, limit=limit)
        return [_ticket(row) for row in rows]

    # Comments.

    async def add_comment(self, comment: CommentRecord) -> None:
        await self._connection.execute(_ADD_COMMENT, **asdict(comment))

    async def comments(
        self, ticket_id: uuid.UUID, *, internal: bool, after: Cursor | None, limit: int
    ) -> list[CommentRecord]:
        """A ticket's comments, oldest first; internal notes only if `internal`."""
        params: dict[str, object] = {"ticket_id": ticket_id, "limit": limit}
        if after is not None:
            params["created_at"], params["id"] = after.created_at, after.id
        rows = await self._connection.fetch(
            _COMMENT_LISTINGS[(internal, after is not None)], **params
        )
        return [_comment(row) for row in rows]

    # Dangerous-reading episodes.

    async def hold_hazard(self, device_id: uuid.UUID, hazard: str) -> None:
        await self._connection.execute(_HOLD_HAZARD, key=f"support:{device_id}:{hazard}")

    async def open_episode(self, device_id: uuid.UUID, hazard: str) -> EpisodeRecord | None:
        row = await self._connection.fetchrow(_OPEN_EPISODE, device_id=device_id, hazard=hazard)
        return _episode(row) if row is not None else None

    async def last_cleared(self, device_id: uuid.UUID, hazard: str) -> datetime | None:
        cleared: datetime | None = await self._connection.fetchval(
            _LAST_CLEARED, device_id=device_id, hazard=hazard
        )
        return cleared

    async def add_episode(self, episode: EpisodeRecord) -> None:
        await self._connection.execute(_ADD_EPISODE, **asdict(episode))

    async def clear_episode(self, episode_id: uuid.UUID, cleared_at: datetime) -> None:
        await self._connection.execute(_CLEAR_EPISODE, id=episode_id, cleared_at=cleared_at)

    # Homes, spaces and devices (the runtime's projection of Space's and Device's events).

    async def sees_space(self, user_id: uuid.UUID, space_id: uuid.UUID, now: datetime) -> bool:
        return await home_directory.is_member(self._connection, user_id, space_id, now)

    async def device_place(self, device_id: uuid.UUID) -> DevicePlace | None:
        return await home_directory.device_place(self._connection, device_id)

    async def primary_owner(self, space_id: uuid.UUID, now: datetime) -> uuid.UUID | None:
        return await home_directory.primary_owner(self._connection, space_id, now)
