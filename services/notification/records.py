"""What Notification's use cases read and write: plain records, enums by name."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime

# Categories, priorities, channels and statuses are stored by their proto names.
DEVICE_STATUS, SAFETY, BILLING, SUPPORT, ACCOUNT = (
    "DEVICE_STATUS",
    "SAFETY",
    "BILLING",
    "SUPPORT",
    "ACCOUNT",
)
CATEGORIES = (DEVICE_STATUS, SAFETY, BILLING, SUPPORT, ACCOUNT)
LOW, NORMAL, CRITICAL = "LOW", "NORMAL", "CRITICAL"
EMAIL, SMS, PUSH = "EMAIL", "SMS", "PUSH"
CHANNELS = (EMAIL, SMS, PUSH)
PENDING, SENT, FAILED = "PENDING", "SENT", "FAILED"


@dataclass(frozen=True)
class Contact:
    """How to reach a user, from the User service's events."""

    user_id: uuid.UUID
    email: str
    phone: str
    locale: str
    time_zone: str
    active: bool
    updated_at: datetime


@dataclass(frozen=True)
class CategoryChoice:
    channels: tuple[str, ...]
    digest: bool = False


@dataclass(frozen=True)
class Preferences:
    """A user's choices; `categories` lists every category that is on."""

    categories: dict[str, CategoryChoice]
    # Both "" (none) or both "HH:MM".
    quiet_start: str = ""
    quiet_end: str = ""
    # "" means the default digest time.
    digest_time: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    id: uuid.UUID
    notification_id: uuid.UUID
    user_id: uuid.UUID
    channel: str
    status: str
    digest: bool
    attempts: int
    next_attempt_at: datetime
    failure_reason: str
    updated_at: datetime


@dataclass(frozen=True)
class NotificationRecord:
    id: uuid.UUID
    user_id: uuid.UUID
    category: str
    priority: str
    title: str
    body: str
    source_event_id: str
    created_at: datetime
    read_at: datetime | None = None
    deliveries: tuple[DeliveryRecord, ...] = field(default=())
