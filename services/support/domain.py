"""Support's rules, without I/O: the status machine, who may move a ticket,
first-response deadlines, and what text a ticket or comment may hold."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from services.runtime.errors import DomainError, InvalidArgument, PermissionDenied
from services.runtime.text import display_name

OPEN, IN_PROGRESS, RESOLVED, CLOSED = "OPEN", "IN_PROGRESS", "RESOLVED", "CLOSED"
STATUSES = (OPEN, IN_PROGRESS, RESOLVED, CLOSED)
LOW, NORMAL, HIGH, URGENT = "LOW", "NORMAL", "HIGH", "URGENT"
PRIORITIES = (LOW, NORMAL, HIGH, URGENT)

SUBJECT_MAX_LENGTH = 200
TEXT_MAX_LENGTH = 10_000

# Every move the machine allows; anything else (and every move out of CLOSED) is refused.
TRANSITIONS: dict[str, frozenset[str]] = {
    OPEN: frozenset({IN_PROGRESS, RESOLVED, CLOSED}),
    IN_PROGRESS: frozenset({OPEN, RESOLVED, CLOSED}),
    RESOLVED: frozenset({IN_PROGRESS, OPEN, CLOSED}),
    CLOSED: frozenset(),
}
# Tickets the SLA clock still runs for (support has not answered, nor finished).
AWAITING_SUPPORT = (OPEN, IN_PROGRESS)


class Actor(Enum):
    """Who moves a ticket."""

    # Support staff: any move the machine allows.
    ADMIN = "admin"
    # The ticket's user: close it, or reopen it while RESOLVED.
    AUTHOR = "author"
    # The platform itself (a dangerous reading cleared): any move the machine allows.
    PLATFORM = "platform"


def _author_may(old: str, new: str) -> bool:
    return new == CLOSED or (old == RESOLVED and new == OPEN)


def is_allowed(old: str, new: str) -> bool:
    return new in TRANSITIONS[old]


def may_move(actor: Actor, old: str, new: str) -> bool:
    """Whether `actor` may make the (machine-allowed) move old → new."""
    return actor is not Actor.AUTHOR or _author_may(old, new)


def check_move(actor: Actor, old: str, new: str) -> bool:
    """Whether old → new changes anything; raises when it is refused.

    The same status is no change (True never comes back for it). A move the
    machine does not allow is FAILED_PRECONDITION, naming both statuses; an
    allowed move the actor may not make is PERMISSION_DENIED.
    """
    if old == new:
        return False
    if not is_allowed(old, new):
        raise DomainError(
            "STATUS_TRANSITION_NOT_ALLOWED",
            f"a ticket cannot move from {old} to {new}",
            old_status=old,
            new_status=new,
        )
    if not may_move(actor, old, new):
        raise PermissionDenied(
            "STATUS_CHANGE_NOT_ALLOWED",
            f"only support staff may move a ticket from {old} to {new}",
        )
    return True


@dataclass(frozen=True)
class Deadlines:
    """How soon support must first answer, by priority."""

    urgent: timedelta = timedelta(minutes=15)
    high: timedelta = timedelta(hours=1)
    normal: timedelta = timedelta(hours=8)
    low: timedelta = timedelta(hours=24)

    def of(self, priority: str) -> timedelta:
        return {URGENT: self.urgent, HIGH: self.high, NORMAL: self.normal, LOW: self.low}[priority]

    def due(self, priority: str, created_at: datetime) -> datetime:
        """When the first answer to a ticket of `priority` opened at `created_at` is due."""
        return created_at + self.of(priority)


def is_first_response(author_id: str, ticket_user_id: str, *, admin: bool, internal: bool) -> bool:
    """Whether a comment is support answering the user: an ADMIN's, not an
    internal note, and not the ticket's own user writing (an ADMIN's own ticket)."""
    return admin and not internal and author_id != ticket_user_id


def reopens(status: str, *, author: bool, admin: bool) -> bool:
    """Whether a comment moves the ticket back to OPEN: its (non-ADMIN) user's, on RESOLVED."""
    return status == RESOLVED and author and not admin


def subject_text(value: str) -> str:
    return display_name(value, "subject", SUBJECT_MAX_LENGTH)


def long_text(value: str, field: str, max_length: int = TEXT_MAX_LENGTH) -> str:
    """Free text of several lines (a description, a comment): 1 to `max_length`
    characters, newlines and tabs allowed, otherwise the same checks as a name
    (no NUL or other control, private-use or unassigned characters; something
    visible). Errors never repeat what was sent."""
    text = value.replace("\r\n", "\n")
    # Line breaks and tabs are the only controls a message may hold; the rest
    # of the checks are the runtime's, on the text with them as spaces.
    display_name(text.replace("\n", " ").replace("\t", " "), field, max_length)
    return text.strip()


@dataclass(frozen=True)
class Limits:
    """What one user may pile up: support's queue is shared by everyone."""

    # Not CLOSED nor RESOLVED.
    open_tickets_per_user: int = 20
    comments_per_ticket: int = 500


def chosen_by_user(priority: str) -> str:
    """A priority a user asks for: URGENT is the platform's own, for alarms."""
    if priority == URGENT:
        raise PermissionDenied(
            "URGENT_RESERVED", "URGENT is for safety alarms and support staff; ask for HIGH"
        )
    return priority


def priority_or_default(name: str | None) -> str:
    """A requested priority: NORMAL when unspecified (None); a name no priority
    has ("" for a number the enum lacks, or UNSPECIFIED set explicitly) is refused."""
    return NORMAL if name is None else known_priority(name)


def known_priority(name: str) -> str:
    if name not in PRIORITIES:
        raise InvalidArgument(
            "INVALID_PRIORITY", "priority must be LOW, NORMAL, HIGH or URGENT", field="priority"
        )
    return name


def known_status(name: str) -> str:
    if name not in STATUSES:
        raise InvalidArgument(
            "INVALID_STATUS",
            "status must be OPEN, IN_PROGRESS, RESOLVED or CLOSED",
            field="status",
        )
    return name
