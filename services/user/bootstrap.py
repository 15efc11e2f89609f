"""Wiring of the User service: its settings, handlers and servicer."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import grpc
from warmhouse.user.v1 import user_pb2_grpc

from services.runtime.config import Environment, RuntimeSettings
from services.runtime.server import Runtime, ServiceDefinition, Worker
from services.runtime.unit_of_work import DatabaseUnitOfWork
from services.user.description import DESCRIPTION
from services.user.domain import REGISTRATIONS_PER_CLIENT, LoginThrottling, ThrottlePolicy
from services.user.grpc_api import UserService
from services.user.handlers import UserHandlers, UserPolicies
from services.user.pruning import Pruner
from services.user.repository import sql_repositories
from services.user.signing_keys import load_private_key
from services.user.tokens import DeviceTokens, TokenIssuer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirstAdmin:
    email: str
    password: str
    phone: str


@dataclass(frozen=True)
class UserSettings:
    private_key_file: Path
    refresh_ttl: timedelta
    first_admin: FirstAdmin | None
    throttling: LoginThrottling
    session_max_lifetime: timedelta = timedelta(days=90)
    registrations: ThrottlePolicy = REGISTRATIONS_PER_CLIENT

    @property
    def policies(self) -> UserPolicies:
        return UserPolicies(
            refresh_ttl=self.refresh_ttl,
            session_max_lifetime=self.session_max_lifetime,
            login=self.throttling,
            registrations=self.registrations,
        )

    @classmethod
    def from_environment(cls, env: Environment) -> "UserSettings":
        email = env.optional_string("WARMHOUSE_ADMIN_EMAIL")
        password = env.optional_string("WARMHOUSE_ADMIN_PASSWORD")
        first_admin = None
        if email and password:
            first_admin = FirstAdmin(email, password, env.string("WARMHOUSE_ADMIN_PHONE", ""))
        return cls(
            private_key_file=env.existing_file("WARMHOUSE_JWT_PRIVATE_KEY_FILE"),
            refresh_ttl=timedelta(
                seconds=env.integer("WARMHOUSE_REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600, 60)
            ),
            first_admin=first_admin,
            throttling=LoginThrottling(
                client=replace(
                    LoginThrottling().client,
                    # Raise it where many people share one address (office NAT).
                    max_failures=env.integer("WARMHOUSE_LOGIN_MAX_FAILURES_PER_CLIENT", 30, 1),
                )
            ),
            session_max_lifetime=timedelta(
                seconds=env.integer("WARMHOUSE_SESSION_MAX_LIFETIME_SECONDS", 90 * 24 * 3600, 60)
            ),
            registrations=replace(
                REGISTRATIONS_PER_CLIENT,
                # Per hour; raise it where many people share one address.
                max_failures=env.integer("WARMHOUSE_REGISTRATIONS_PER_CLIENT", 10, 1),
            ),
        )


def definition(settings: UserSettings) -> ServiceDefinition:
    async def attach(server: grpc.aio.Server, runtime: Runtime) -> Sequence[Worker]:
        issuer = TokenIssuer(
            load_private_key(settings.private_key_file),
            runtime.settings.access_token_ttl_seconds,
        )
        uow = DatabaseUnitOfWork(runtime.database, runtime.relay, sql_repositories)
        handlers = UserHandlers(
            uow,
            issuer,
            DeviceTokens(runtime.settings.derived_key("device-tokens")),
            runtime.page_tokens,
            settings.policies,
            revoke_locally=runtime.revoked.revoke_session,
        )
        admin = settings.first_admin
        if admin and await handlers.ensure_admin(admin.email, admin.password, admin.phone or ""):
            log.info("created the first administrator", extra={"email": admin.email})
        user_pb2_grpc.add_UserServiceServicer_to_server(
            UserService(handlers, runtime.client_addresses), server
        )
        throttle_window = max(settings.throttling.longest_window, settings.registrations.window)
        return (Pruner(uow, throttle_window, settings.refresh_ttl).job(),)

    return ServiceDefinition(
        description=DESCRIPTION,
        migrations=Path(__file__).parent / "migrations",
        attach=attach,
    )


def build(env: Environment) -> tuple[ServiceDefinition, RuntimeSettings]:
    return definition(UserSettings.from_environment(env)), RuntimeSettings.from_environment(env)
