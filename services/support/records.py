"""What Support's use cases read and write: plain records."""

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TicketRecord:
    id: uuid.UUID
    user_id: uuid.UUID
    subject: str
    description: str
    status: str
    priority: str
    space_id: uuid.UUID | None
    device_id: uuid.UUID | None
    first_response_due_at: datetime
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None = None
    sla_breached: bool = False


@dataclass(frozen=True)
class CommentRecord:
    id: uuid.UUID
    ticket_id: uuid.UUID
    # None: the platform wrote it (e.g. "readings are back to normal").
    author_id: uuid.UUID | None
    message: str
    internal: bool
    created_at: datetime


@dataclass(frozen=True)
class EpisodeRecord:
    """One dangerous-reading episode of a device: detected (with the ticket it
    opened) until cleared. A clearance seen without a detection is kept as an
    episode with only `cleared_at`, so a late detection older than it is ignored."""

    id: uuid.UUID
    device_id: uuid.UUID
    hazard: str
    ticket_id: uuid.UUID | None
    detected_at: datetime | None
    cleared_at: datetime | None
