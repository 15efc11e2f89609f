"""Wiring of the Support service: its settings, handlers, servicer, consumers and jobs."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import grpc
from warmhouse.support.v1 import support_pb2_grpc

from services.runtime import home_directory
from services.runtime.config import Environment, RuntimeSettings
from services.runtime.periodic import PeriodicJob
from services.runtime.server import Runtime, ServiceDefinition, Worker
from services.runtime.unit_of_work import DatabaseUnitOfWork
from services.support.comments import CommentHandlers
from services.support.description import DESCRIPTION
from services.support.domain import PRIORITIES, Deadlines, Limits
from services.support.grpc_api import SupportService
from services.support.hazards import HazardTickets
from services.support.repository import SupportRepository
from services.support.sla import mark_breaches
from services.support.tickets import DEFAULT_LIMITS, TicketHandlers

DEFAULT_DEADLINES = Deadlines()


def deadline_variable(priority: str) -> str:
    return f"WARMHOUSE_SUPPORT_FIRST_RESPONSE_{priority}_SECONDS"


@dataclass(frozen=True)
class SupportSettings:
    # How soon support must first answer, by priority.
    deadlines: Deadlines = field(default_factory=Deadlines)
    # How often late first answers are looked for.
    sla_check_every: timedelta = timedelta(seconds=30)
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_environment(cls, env: Environment) -> "SupportSettings":
        seconds = {
            priority: env.integer(
                deadline_variable(priority),
                int(DEFAULT_DEADLINES.of(priority).total_seconds()),
                1,
            )
            for priority in PRIORITIES
        }
        return cls(
            deadlines=Deadlines(
                urgent=timedelta(seconds=seconds["URGENT"]),
                high=timedelta(seconds=seconds["HIGH"]),
                normal=timedelta(seconds=seconds["NORMAL"]),
                low=timedelta(seconds=seconds["LOW"]),
            ),
            sla_check_every=timedelta(
                seconds=env.integer("WARMHOUSE_SUPPORT_SLA_CHECK_SECONDS", 30, 1)
            ),
            limits=Limits(
                open_tickets_per_user=env.integer(
                    "WARMHOUSE_SUPPORT_MAX_OPEN_TICKETS_PER_USER",
                    DEFAULT_LIMITS.open_tickets_per_user,
                    1,
                ),
                comments_per_ticket=env.integer(
                    "WARMHOUSE_SUPPORT_MAX_COMMENTS_PER_TICKET",
                    DEFAULT_LIMITS.comments_per_ticket,
                    1,
                ),
            ),
        )


def definition(settings: SupportSettings) -> ServiceDefinition:
    async def attach(server: grpc.aio.Server, runtime: Runtime) -> Sequence[Worker]:
        uow = DatabaseUnitOfWork(runtime.database, runtime.relay, SupportRepository)
        tickets = TicketHandlers(
            uow, runtime.page_tokens, settings.deadlines, limits=settings.limits
        )
        comments = CommentHandlers(uow, runtime.page_tokens, limits=settings.limits)
        support_pb2_grpc.add_SupportServiceServicer_to_server(
            SupportService(tickets, comments), server
        )
        hazards = HazardTickets(
            settings.deadlines, catch_up=home_directory.CatchUp(runtime.jetstream, "support")
        )
        return (
            *home_directory.consumers(
                runtime.database, runtime.jetstream, runtime.relay, "support"
            ),
            *hazards.consumers(runtime.database, runtime.jetstream, runtime.relay),
            PeriodicJob("ticket-sla", settings.sla_check_every, lambda: mark_breaches(uow)),
        )

    return ServiceDefinition(
        description=DESCRIPTION,
        migrations=Path(__file__).parent / "migrations",
        extra_migrations=(home_directory.MIGRATIONS,),
        attach=attach,
        consumes_from=tuple(sorted({"device", "space", *home_directory.CONSUMES_FROM})),
    )


def build(env: Environment) -> tuple[ServiceDefinition, RuntimeSettings]:
    return definition(SupportSettings.from_environment(env)), RuntimeSettings.from_environment(env)
