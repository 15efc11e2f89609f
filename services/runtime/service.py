"""What a service is, declared once in its own package.

The runtime (which methods need which credential), the local stack (process,
database, secrets), Envoy's rendering (routes, public paths, health checks)
and the tests all read a service's `ServiceDescription`; nothing else names
its methods or its database.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum

_DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")


class Access(Enum):
    """Who may call a method."""

    # Anyone, without a credential (registration, login, key discovery).
    PUBLIC = "public"
    # An end user's access token (forwarded by another service or not).
    USER = "user"
    # Only another WarmHouse service, with its service credential; Envoy never routes it.
    INTERNAL = "internal"


@dataclass(frozen=True)
class ServiceDescription:
    # DNS-safe: also the Envoy cluster's and the Kubernetes Service's name.
    name: str
    # Full names of the gRPC services it serves, e.g. warmhouse.user.v1.UserService.
    grpc_services: tuple[str, ...]
    # Full method paths (/pkg.Service/Method) with an access other than USER.
    public_methods: frozenset[str] = frozenset()
    internal_methods: frozenset[str] = frozenset()
    # Environment variable → file name in the secrets directory, for secrets
    # only this service may hold.
    secret_files: Mapping[str, str] = field(default_factory=dict)
    # False for a service whose state lives elsewhere (the Device Adapter's
    # is its open streams): no database, no outbox.
    owns_database: bool = True
    # False for a service Envoy never routes to (hardware reaches the Device
    # Adapter on its own port).
    behind_edge: bool = True
    # How long its events stay in its stream, and at most how many bytes of
    # them (-1: no limit): telemetry is worth less, and weighs more, than a
    # membership change.
    event_retention: timedelta = timedelta(days=30)
    event_bytes: int = -1
    # The other services it calls over gRPC (by name): the Kubernetes network
    # policies let exactly these connections through. A test holds it to the
    # `env.service_address(...)` calls in its bootstrap.
    calls: tuple[str, ...] = ()
    # True for a service that calls providers on the internet (payments, mail,
    # SMS, push): its pods may leave the cluster on the providers' ports.
    reaches_outside: bool = False

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.name):
            raise ValueError(f"service name {self.name!r} must be a DNS label, e.g. device-adapter")
        overlap = self.public_methods & self.internal_methods
        if overlap:
            raise ValueError(f"{self.name}: methods both public and internal: {sorted(overlap)}")
        for method in self.public_methods | self.internal_methods:
            service = method.removeprefix("/").rsplit("/", 1)[0]
            if service not in self.grpc_services:
                raise ValueError(f"{self.name}: {method} is not a method of its gRPC services")
        for callee in self.calls:
            if callee == self.name or not _DNS_LABEL.match(callee):
                raise ValueError(f"{self.name}: {callee!r} is no other service's name")

    @property
    def python_name(self) -> str:
        return self.name.replace("-", "_")

    @property
    def module(self) -> str:
        """Run as `python -m <module>`."""
        return f"services.{self.python_name}"

    @property
    def database(self) -> str:
        """Its own database; no other service connects to it."""
        return f"warmhouse_{self.python_name}"

    def access(self, method: str) -> Access:
        if method in self.public_methods:
            return Access.PUBLIC
        if method in self.internal_methods:
            return Access.INTERNAL
        return Access.USER


def method_paths(grpc_service: str, *methods: str) -> frozenset[str]:
    """Full paths of `methods` of one gRPC service."""
    return frozenset(f"/{grpc_service}/{method}" for method in methods)
