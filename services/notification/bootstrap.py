"""Wiring of the Notification service: its settings, senders, consumers and dispatcher."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
from warmhouse.notification.v1 import notification_pb2_grpc

from services.notification.description import (
    DESCRIPTION,
    PUSH_API_KEY_ENV,
    SMS_API_KEY_ENV,
    SMTP_PASSWORD_ENV,
)
from services.notification.dispatcher import Dispatcher, DispatchSettings
from services.notification.events import PREFIX, NotificationEvents
from services.notification.grpc_api import NotificationService
from services.notification.handlers import NotificationHandlers
from services.notification.records import EMAIL, PUSH, SMS
from services.notification.repository import NotificationRepository
from services.notification.senders import EmailSender, push_sender, sms_sender
from services.runtime import home_directory
from services.runtime.config import Environment, RuntimeSettings
from services.runtime.messaging import EventConsumer
from services.runtime.server import Runtime, ServiceDefinition, Worker
from services.runtime.unit_of_work import DatabaseUnitOfWork

# The senders' own whole-call deadline is three times their timeout (senders.py);
# the dispatcher's guard lies just beyond it.
SENDER_DEADLINE_FACTOR = 3
# A lease outlives the dispatcher's guard by this much (replicas' clocks differ
# a little); a crashed replica's deliveries wait for it, so it stays short.
LEASE_MARGIN_SECONDS = 10
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class NotificationSettings:
    smtp_host: str
    smtp_port: int
    smtp_from: str
    sms_url: str
    sms_api_key: str
    push_url: str
    push_api_key: str
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    max_attempts: int = 6
    retry_base_seconds: int = 1
    send_timeout_seconds: int = 5
    concurrency: int = 32

    @classmethod
    def from_environment(cls, env: Environment) -> "NotificationSettings":
        password_file = env.optional_string(SMTP_PASSWORD_ENV)
        return cls(
            smtp_host=env.string("WARMHOUSE_NOTIFICATION_SMTP_HOST"),
            smtp_port=env.integer("WARMHOUSE_NOTIFICATION_SMTP_PORT", 25, 1),
            smtp_from=env.string("WARMHOUSE_NOTIFICATION_SMTP_FROM"),
            sms_url=env.string("WARMHOUSE_NOTIFICATION_SMS_URL"),
            sms_api_key=env.secret(SMS_API_KEY_ENV).decode(),
            push_url=env.string("WARMHOUSE_NOTIFICATION_PUSH_URL"),
            push_api_key=env.secret(PUSH_API_KEY_ENV).decode(),
            smtp_username=env.optional_string("WARMHOUSE_NOTIFICATION_SMTP_USERNAME"),
            # A relay's password, not a key of ours: any length it has.
            smtp_password=(
                env.existing_file(SMTP_PASSWORD_ENV).read_text().strip() if password_file else None
            ),
            smtp_starttls=env.flag("WARMHOUSE_NOTIFICATION_SMTP_STARTTLS"),
            max_attempts=env.integer("WARMHOUSE_NOTIFICATION_MAX_ATTEMPTS", 6, 1),
            retry_base_seconds=env.integer("WARMHOUSE_NOTIFICATION_RETRY_BASE_SECONDS", 1, 1),
            send_timeout_seconds=env.integer("WARMHOUSE_NOTIFICATION_SEND_TIMEOUT_SECONDS", 5, 1),
            concurrency=env.integer("WARMHOUSE_NOTIFICATION_CONCURRENCY", 32, 1),
        )

    @property
    def _guard_seconds(self) -> int:
        return SENDER_DEADLINE_FACTOR * self.send_timeout_seconds + 1

    @property
    def dispatch(self) -> DispatchSettings:
        return DispatchSettings(
            max_attempts=self.max_attempts,
            retry_base_seconds=float(self.retry_base_seconds),
            concurrency=self.concurrency,
            send_timeout_seconds=float(self._guard_seconds),
            lease=timedelta(seconds=self._guard_seconds + LEASE_MARGIN_SECONDS),
        )


def definition(settings: NotificationSettings) -> ServiceDefinition:
    async def attach(server: grpc.aio.Server, runtime: Runtime) -> Sequence[Worker]:
        uow = DatabaseUnitOfWork(runtime.database, runtime.relay, NotificationRepository)
        timeout = float(settings.send_timeout_seconds)
        concurrency = settings.concurrency
        email = EmailSender(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            settings.smtp_username,
            settings.smtp_password,
            settings.smtp_starttls,
            timeout,
            concurrency=concurrency,
        )
        sms = sms_sender(settings.sms_url, settings.sms_api_key, timeout, concurrency=concurrency)
        push = push_sender(
            settings.push_url, settings.push_api_key, timeout, concurrency=concurrency
        )

        def close_senders() -> None:
            for sender in (email, sms, push):
                sender.close()

        dispatcher = Dispatcher(
            uow,
            {EMAIL: email, SMS: sms, PUSH: push},
            settings.dispatch,
            close_senders=close_senders,
        )
        runtime.stop_hooks.append(dispatcher.stop)
        events = NotificationEvents(
            wake=dispatcher.wake, catch_up=home_directory.CatchUp(runtime.jetstream, PREFIX)
        )
        notification_pb2_grpc.add_NotificationServiceServicer_to_server(
            NotificationService(NotificationHandlers(uow, runtime.page_tokens)), server
        )
        consumers: list[Worker] = [
            EventConsumer(runtime.database, runtime.jetstream, subscription, relay=runtime.relay)
            for subscription in events.subscriptions()
        ]
        directory = home_directory.consumers(
            runtime.database, runtime.jetstream, runtime.relay, PREFIX
        )
        return (*consumers, *directory, dispatcher)

    return ServiceDefinition(
        description=DESCRIPTION,
        migrations=MIGRATIONS,
        attach=attach,
        consumes_from=tuple(
            dict.fromkeys(("user", "billing", "support", *home_directory.CONSUMES_FROM))
        ),
        extra_migrations=(home_directory.MIGRATIONS,),
    )


def build(env: Environment) -> tuple[ServiceDefinition, RuntimeSettings]:
    return definition(NotificationSettings.from_environment(env)), RuntimeSettings.from_environment(
        env
    )
