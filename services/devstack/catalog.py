"""The services that exist so far; the stack, Envoy's routes and its health checks follow it.

Adding a service means appending one entry here.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.devstack.layout import SIGNING_KEY_FILE_NAME
from services.user import grpc_api as user_api


@dataclass(frozen=True)
class ServiceSpec:
    # Also the Envoy cluster's and the Kubernetes Service's name.
    name: str
    # Run as `python -m <module>`.
    module: str
    # Full names of the gRPC services it serves; Envoy transcodes and routes these.
    grpc_services: tuple[str, ...]
    # Its own database; no other service connects to it.
    database: str
    # RPCs callable without an access token (the service's own list, so Envoy
    # and the service cannot disagree); Envoy lets their REST routes through.
    public_methods: frozenset[str] = frozenset()
    # Environment variable → file in the keys directory, for secrets only this
    # service may hold.
    key_file_env: Mapping[str, str] = field(default_factory=dict)


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="user",
        module="services.user",
        grpc_services=("warmhouse.user.v1.UserService",),
        database="warmhouse_user",
        public_methods=user_api.PUBLIC_METHODS,
        key_file_env={"WARMHOUSE_JWT_PRIVATE_KEY_FILE": SIGNING_KEY_FILE_NAME},
    ),
)
