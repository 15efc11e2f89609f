"""Envoy's configuration, derived from the service registry.

The local stack and Kubernetes get the same configuration; only addresses and
file paths differ. The Kubernetes one is committed as envoy/envoy.yaml:

    python -m services.devstack.envoy_config --kubernetes > envoy/envoy.yaml

It is printed as JSON, which is also YAML: no YAML library is needed to write it.
"""

import argparse
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from google.api import annotations_pb2
from google.protobuf import descriptor_pool

from services.registry import SERVICES
from services.runtime.auth import AUDIENCE, ISSUER
from services.runtime.service import ServiceDescription

JWT_PROVIDER = "warmhouse"
HEALTHZ_PATH = "/healthz"
MAX_REQUEST_BODY_BYTES = 64 * 1024
MAX_DOWNSTREAM_CONNECTIONS = 10_000
ROUTE_TIMEOUT = "15s"
CONNECT_TIMEOUT = "2s"
HEALTH_CHECK_INTERVAL = "1s"
# The gRPC code Envoy's own error replies carry, so that they read like the
# google.rpc.Status bodies the transcoder makes of the services' errors.
# 413 maps as gRPC reports an oversized message: RESOURCE_EXHAUSTED.
GRPC_CODE_BY_HTTP_STATUS = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    413: 8,  # RESOURCE_EXHAUSTED
    429: 8,  # RESOURCE_EXHAUSTED
    500: 13,  # INTERNAL
    502: 14,  # UNAVAILABLE
    503: 14,  # UNAVAILABLE
    504: 4,  # DEADLINE_EXCEEDED
}
GRPC_UNKNOWN = 2
# The REST call as the client sent it (the transcoder rewrites method and path),
# then the RPC it became and how it ended.
ACCESS_LOG_FORMAT = (
    "[%START_TIME%] %REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"
    " -> %RESPONSE_CODE% %RESPONSE_FLAGS% %DURATION%ms rpc=%REQ(:PATH)% grpc-status=%GRPC_STATUS%"
    " client=%REQ(X-FORWARDED-FOR)% upstream=%UPSTREAM_HOST% request-id=%REQ(X-REQUEST-ID)%\n"
)

KUBERNETES_LISTENER_PORT = 8080
KUBERNETES_ADMIN_PORT = 9901
KUBERNETES_GRPC_PORT = 50051
KUBERNETES_CONFIG_DIR = PurePath("/etc/envoy")


@dataclass(frozen=True)
class SocketAddress:
    host: str
    port: int


@dataclass(frozen=True)
class EnvoySettings:
    listener: SocketAddress
    admin: SocketAddress
    # Service name → where its gRPC server listens.
    upstreams: Mapping[str, SocketAddress]
    descriptor_set: PurePath
    jwks_file: PurePath


def kubernetes_settings() -> EnvoySettings:
    """Each service behind a Kubernetes Service of its own name on the gRPC port."""
    return EnvoySettings(
        listener=SocketAddress("0.0.0.0", KUBERNETES_LISTENER_PORT),
        # The admin interface can change Envoy's state: never off the pod.
        admin=SocketAddress("127.0.0.1", KUBERNETES_ADMIN_PORT),
        upstreams={spec.name: SocketAddress(spec.name, KUBERNETES_GRPC_PORT) for spec in SERVICES},
        descriptor_set=KUBERNETES_CONFIG_DIR / "warmhouse.binpb",
        jwks_file=KUBERNETES_CONFIG_DIR / "jwks.json",
    )


def render(
    settings: EnvoySettings, services: Sequence[ServiceDescription] = SERVICES
) -> dict[str, Any]:
    return {
        "admin": {"address": _socket_address(settings.admin)},
        # An edge proxy without a connection cap can be exhausted by idle clients.
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors"
                        ".downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": MAX_DOWNSTREAM_CONNECTIONS,
                    },
                }
            ]
        },
        "static_resources": {
            "listeners": [_listener(settings, services)],
            "clusters": [_cluster(spec, settings.upstreams[spec.name]) for spec in services],
        },
    }


def _listener(settings: EnvoySettings, services: Sequence[ServiceDescription]) -> dict[str, Any]:
    connection_manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network"
        ".http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "rest",
        "codec_type": "AUTO",
        # Envoy is the edge: it appends the client's address to x-forwarded-for,
        # which the services use (e.g. to throttle failed logins per client).
        "use_remote_address": True,
        # Token rules match the path as written; normalizing first means
        # "//users" or "/x/../users" cannot dodge or borrow a rule.
        "normalize_path": True,
        "merge_slashes": True,
        "access_log": [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3"
                    ".StdoutAccessLog",
                    "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
                },
            }
        ],
        "local_reply_config": _local_reply_config(),
        "route_config": _route_config(services),
        "http_filters": [
            _health_check_filter(services),
            _jwt_filter(settings, services),
            _transcoder_filter(settings, services),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    return {
        "name": "rest",
        "address": _socket_address(settings.listener),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": connection_manager,
                    }
                ]
            }
        ],
    }


def _health_check_filter(services: Sequence[ServiceDescription]) -> dict[str, Any]:
    """GET /healthz: 200 only while every service passes its gRPC health check."""
    return {
        "name": "envoy.filters.http.health_check",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.health_check.v3"
            ".HealthCheck",
            "pass_through_mode": False,
            "headers": [
                {"name": ":path", "string_match": {"exact": HEALTHZ_PATH}},
                {"name": ":method", "string_match": {"exact": "GET"}},
            ],
            "cluster_min_healthy_percentages": {spec.name: {"value": 100} for spec in services},
        },
    }


def _jwt_filter(settings: EnvoySettings, services: Sequence[ServiceDescription]) -> dict[str, Any]:
    """An access token on every call except the services' public routes.

    Rules run before transcoding, so they match the REST path the client sent;
    the first matching rule wins, and one without `requires` lets the call through.
    """
    public_rules = [
        {
            "match": {
                **_path_match(path),
                "headers": [{"name": ":method", "string_match": {"exact": verb}}],
            }
        }
        for spec in services
        for method in sorted(spec.public_methods)
        for verb, path in http_routes(method)
    ]
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3"
            ".JwtAuthentication",
            "providers": {
                JWT_PROVIDER: {
                    "issuer": ISSUER,
                    "audiences": [AUDIENCE],
                    "local_jwks": {"filename": str(settings.jwks_file)},
                    # The services verify the token again (and check revocation).
                    "forward": True,
                }
            },
            "rules": [
                *public_rules,
                {"match": {"path": HEALTHZ_PATH}},
                {"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}},
            ],
        },
    }


def http_routes(method: str) -> list[tuple[str, str]]:
    """The REST (verb, path template) pairs a gRPC method is annotated with.

    `method` is a full method path, e.g. /warmhouse.user.v1.UserService/Login;
    its generated module must have been imported (it registers the descriptor).
    """
    descriptor = descriptor_pool.Default().FindMethodByName(method.strip("/").replace("/", "."))
    rules = [descriptor.GetOptions().Extensions[annotations_pb2.http]]
    rules.extend(rules[0].additional_bindings)
    routes = []
    for rule in rules:
        verb = rule.WhichOneof("pattern")
        if verb is not None and verb != "custom":
            routes.append((verb.upper(), getattr(rule, verb)))
    return routes


def _path_match(template: str) -> dict[str, Any]:
    """An exact match, or a regex where the template has {variables}."""
    if "{" not in template:
        return {"path": template}
    regex = re.sub(
        r"\{[^}]+\}", "[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    )
    return {"safe_regex": {"regex": regex}}


def _transcoder_filter(
    settings: EnvoySettings, services: Sequence[ServiceDescription]
) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.grpc_json_transcoder",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3"
            ".GrpcJsonTranscoder",
            "proto_descriptor": str(settings.descriptor_set),
            "services": [name for spec in services for name in spec.grpc_services],
            # camelCase names and enum names are the defaults; zeros and empty
            # strings are printed too, so clients always see every field.
            "print_options": {"always_print_primitive_fields": True},
            # gRPC errors become JSON google.rpc.Status bodies with their details.
            "convert_grpc_status": True,
            # A path or query parameter no RPC declares is a client error (404,
            # 400), not a call with the parameter silently dropped.
            "request_validation_options": {
                "reject_unknown_method": True,
                "reject_unknown_query_parameters": True,
            },
            "max_request_body_size": MAX_REQUEST_BODY_BYTES,
        },
    }


def _route_config(services: Sequence[ServiceDescription]) -> dict[str, Any]:
    # Routes see the path after transcoding: /<package>.<Service>/<Method>.
    service_routes = [
        {
            "match": {"prefix": f"/{grpc_service}/"},
            "route": {
                "cluster": spec.name,
                "timeout": ROUTE_TIMEOUT,
                # Safe for any method: the service never saw the request (e.g.
                # a replica that stopped accepting during a rolling restart).
                "retry_policy": {"retry_on": "connect-failure,refused-stream", "num_retries": 2},
            },
        }
        for spec in services
        for grpc_service in spec.grpc_services
    ]
    not_found = {
        "match": {"prefix": "/"},
        "direct_response": {"status": 404, "body": {"inline_string": "no such endpoint"}},
    }
    return {
        "name": "rest",
        "virtual_hosts": [
            {"name": "warmhouse", "domains": ["*"], "routes": [*service_routes, not_found]}
        ],
    }


def _local_reply_config() -> dict[str, Any]:
    """Envoy's own error replies (401, 404, 413, 503, ...) as google.rpc.Status-like JSON."""
    by_status = [
        {"filter": _status_filter("EQ", status), "body_format_override": _status_body(code)}
        for status, code in GRPC_CODE_BY_HTTP_STATUS.items()
    ]
    any_other_error = {
        "filter": _status_filter("GE", 400),
        "body_format_override": _status_body(GRPC_UNKNOWN),
    }
    return {"mappers": [*by_status, any_other_error]}


def _status_filter(op: str, status: int) -> dict[str, Any]:
    # Envoy insists on a runtime key; nothing ever sets this one.
    value = {"default_value": status, "runtime_key": "warmhouse.local_reply.status"}
    return {"status_code_filter": {"comparison": {"op": op, "value": value}}}


def _status_body(grpc_code: int) -> dict[str, Any]:
    # The same members the transcoder prints for a service's error.
    return {"json_format": {"code": grpc_code, "message": "%LOCAL_REPLY_BODY%", "details": []}}


def _cluster(spec: ServiceDescription, address: SocketAddress) -> dict[str, Any]:
    return {
        "name": spec.name,
        "type": "STATIC" if _is_ip(address.host) else "STRICT_DNS",
        "connect_timeout": CONNECT_TIMEOUT,
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3"
                ".HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": spec.name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(address)}}]}],
        },
        "health_checks": [
            {
                "timeout": HEALTH_CHECK_INTERVAL,
                "interval": HEALTH_CHECK_INTERVAL,
                # Idle clusters are otherwise checked only once a minute.
                "no_traffic_interval": HEALTH_CHECK_INTERVAL,
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {},
            }
        ],
    }


def _socket_address(address: SocketAddress) -> dict[str, Any]:
    return {"socket_address": {"address": address.host, "port_value": address.port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description="Print Envoy's configuration as JSON.")
    parser.add_argument(
        "--kubernetes",
        action="store_true",
        required=True,
        help="render for the cluster (the local stack renders its own at start-up)",
    )
    parser.parse_args()
    print(json.dumps(render(kubernetes_settings()), indent=2))


if __name__ == "__main__":
    main()
