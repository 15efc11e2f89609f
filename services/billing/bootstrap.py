"""Wiring of the Billing service: its settings, handlers, servicer and jobs."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
from warmhouse.billing.v1 import billing_pb2_grpc

from services.billing import money
from services.billing.description import DESCRIPTION, PROVIDER_API_KEY_ENV, WEBHOOK_SECRET_ENV
from services.billing.grpc_api import BillingService
from services.billing.invoices import InvoiceHandlers, announce_overdue
from services.billing.payments import PaymentHandlers
from services.billing.provider import ProviderClient
from services.billing.provider_events import ProviderEvents, forget_old_events
from services.billing.reconciliation import ASK_AFTER, Reconciliation
from services.billing.repository import BillingRepository
from services.runtime.config import Environment, RuntimeSettings
from services.runtime.periodic import PeriodicJob
from services.runtime.server import Runtime, ServiceDefinition, Worker
from services.runtime.unit_of_work import DatabaseUnitOfWork
from services.runtime.user_status import USER_METHODS, UserStatusClient

DEFAULT_CURRENCY = "RUB"
PRUNE_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class BillingSettings:
    # The payment provider's API (the local stack runs its sandbox).
    provider_url: str
    provider_api_key: str
    # Signs the provider's webhooks.
    webhook_secret: bytes
    # Where UserService listens (is the account invoiced an active one?).
    user_address: str
    # The one currency invoices are issued and wallets kept in.
    currency: str = DEFAULT_CURRENCY
    provider_timeout_seconds: int = 10
    reconcile_every: timedelta = timedelta(seconds=5)
    # A payment INITIATED this long is asked after (longer than a provider call).
    reconcile_after: timedelta = ASK_AFTER
    overdue_check_every: timedelta = timedelta(seconds=30)

    @classmethod
    def from_environment(cls, env: Environment) -> "BillingSettings":
        return cls(
            provider_url=env.string("WARMHOUSE_BILLING_PROVIDER_URL"),
            provider_api_key=env.secret(PROVIDER_API_KEY_ENV).decode(),
            webhook_secret=env.secret(WEBHOOK_SECRET_ENV),
            user_address=env.service_address("user"),
            currency=money.currency_code(
                env.string("WARMHOUSE_BILLING_CURRENCY", DEFAULT_CURRENCY),
                "WARMHOUSE_BILLING_CURRENCY",
            ),
            provider_timeout_seconds=env.integer(
                "WARMHOUSE_BILLING_PROVIDER_TIMEOUT_SECONDS", 10, 1
            ),
            reconcile_every=timedelta(
                seconds=env.integer("WARMHOUSE_BILLING_RECONCILE_SECONDS", 5, 1)
            ),
            reconcile_after=timedelta(
                seconds=env.integer(
                    "WARMHOUSE_BILLING_RECONCILE_AFTER_SECONDS", int(ASK_AFTER.total_seconds()), 1
                )
            ),
            overdue_check_every=timedelta(
                seconds=env.integer("WARMHOUSE_BILLING_OVERDUE_CHECK_SECONDS", 30, 1)
            ),
        )


def definition(settings: BillingSettings) -> ServiceDefinition:
    async def attach(server: grpc.aio.Server, runtime: Runtime) -> Sequence[Worker]:
        uow = DatabaseUnitOfWork(runtime.database, runtime.relay, BillingRepository)
        provider = ProviderClient(
            settings.provider_url, settings.provider_api_key, settings.provider_timeout_seconds
        )
        users = runtime.open_channel(settings.user_address, idempotent_methods=USER_METHODS)
        invoices = InvoiceHandlers(
            uow, UserStatusClient(users), runtime.page_tokens, settings.currency
        )
        payments = PaymentHandlers(uow, provider, runtime.page_tokens, settings.currency)
        events = ProviderEvents(uow, settings.webhook_secret)
        billing_pb2_grpc.add_BillingServiceServicer_to_server(
            BillingService(invoices, payments, events), server
        )
        reconciliation = Reconciliation(uow, payments, provider, ask_after=settings.reconcile_after)
        return (
            PeriodicJob(
                "payment-reconciliation", settings.reconcile_every, reconciliation.run_once
            ),
            PeriodicJob(
                "invoice-overdue", settings.overdue_check_every, lambda: announce_overdue(uow)
            ),
            PeriodicJob("provider-event-pruning", PRUNE_EVERY, lambda: forget_old_events(uow)),
        )

    return ServiceDefinition(
        description=DESCRIPTION,
        migrations=Path(__file__).parent / "migrations",
        attach=attach,
    )


def build(env: Environment) -> tuple[ServiceDefinition, RuntimeSettings]:
    return definition(BillingSettings.from_environment(env)), RuntimeSettings.from_environment(env)
