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
from services.runtime.internal_auth import SERVICE_TOKEN_HEADER
from services.runtime.service import ServiceDescription

JWT_PROVIDER = "warmhouse"
HEALTHZ_PATH = "/healthz"
MAX_REQUEST_BODY_BYTES = 64 * 1024
MAX_DOWNSTREAM_CONNECTIONS = 10_000
ROUTE_TIMEOUT = "15s"
CONNECT_TIMEOUT = "2s"
HEALTH_CHECK_INTERVAL = "1s"
# The credential services present to each other in gRPC metadata. No client may
# send one through the edge, so Envoy strips it from every request it routes.
# On every answer, the services' and Envoy's own: it is all per-user data
# (tokens, profiles) that no cache may keep, and none of it is to be sniffed as HTML.
RESPONSE_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit"
# The gRPC code Envoy's own error replies carry, so that they read like the
# google.rpc.Status bodies the transcoder makes of the services' errors.
# 413 maps as gRPC reports an oversized message: RESOURCE_EXHAUSTED; 415 is a
# malformed request like any other 400.
GRPC_CODE_BY_HTTP_STATUS = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    413: 8,  # RESOURCE_EXHAUSTED
    415: 3,  # INVALID_ARGUMENT
    429: 8,  # RESOURCE_EXHAUSTED
    431: 8,  # RESOURCE_EXHAUSTED: headers too large
    500: 13,  # INTERNAL
    502: 14,  # UNAVAILABLE
    503: 14,  # UNAVAILABLE
    504: 4,  # DEADLINE_EXCEEDED
}
GRPC_UNKNOWN = 2
# Envoy's own wording where it would not tell a client what to do.
# Fixed words where Envoy's own would repeat what the client sent (the
# transcoder quotes unknown enum values, query parameters and whole paths).
LOCAL_REPLY_MESSAGES = {
    400: "the request does not match the API: check its path, query parameters and JSON body",
    404: "no such endpoint",
    429: "too many requests: retry after the seconds in Retry-After",
}
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
class TokenBucket:
    """`per_second` requests a second on average, `burst` at once after a quiet spell."""

    per_second: int
    burst: int


# Anonymous calls that write: registration and login each cost ~120 ms of CPU
# (argon2id), so 2 cores hash ~16 a second. 20 lets them run flat out; more
# would only queue until they time out, delaying everyone's.
PUBLIC_WRITE_RATE = TokenBucket(per_second=20, burst=40)
# Anonymous reads (the signing keys) are cheap; the bucket only stops a flood.
PUBLIC_READ_RATE = TokenBucket(per_second=200, burst=400)


@dataclass(frozen=True)
class PublicRateLimits:
    """Envoy's token buckets for the public RPCs, one per RPC and Envoy process.

    A public RPC whose REST routes are all GETs is a read; any other is a write.
    Every client shares a bucket: the limit protects the services' CPU, while
    the User service throttles failed logins per client and per account.
    """

    writes: TokenBucket = PUBLIC_WRITE_RATE
    reads: TokenBucket = PUBLIC_READ_RATE


@dataclass(frozen=True)
class EnvoySettings:
    listener: SocketAddress
    admin: SocketAddress
    # Service name → where its gRPC server listens.
    upstreams: Mapping[str, SocketAddress]
    descriptor_set: PurePath
    jwks_file: PurePath
    public_rate_limits: PublicRateLimits = PublicRateLimits()
    # The address Envoy's connections to services leave from, when it must be
    # told apart from other local clients (services trust its x-forwarded-for).
    upstream_source: str | None = None


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
    services = [spec for spec in services if spec.behind_edge]
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
            "clusters": [
                _cluster(spec, settings.upstreams[spec.name], settings.upstream_source)
                for spec in services
            ],
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
        # No "server: envoy" banner on Envoy's answers, nor a service's on its own.
        "server_header_transformation": "PASS_THROUGH",
        "local_reply_config": _local_reply_config(),
        "route_config": _route_config(settings, services),
        "http_filters": [
            # First, so that every answer passes it on its way out, Envoy's own too.
            _response_headers_filter(),
            _health_check_filter(services),
            _json_body_filter(),
            _jwt_filter(settings, services),
            _transcoder_filter(settings, services),
            # After transcoding, so that it sees the RPC's route (/<pkg>.<Service>/<Method>).
            _rate_limit_filter(),
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


def _response_headers_filter() -> dict[str, Any]:
    """RESPONSE_HEADERS on every answer, and no upstream's `server` header."""
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3"
            ".HeaderMutation",
            "mutations": {
                "response_mutations": [
                    *(
                        {
                            "append": {
                                "header": {"key": name, "value": value},
                                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                            }
                        }
                        for name, value in RESPONSE_HEADERS.items()
                    ),
                    {"remove": "server"},
                ]
            },
        },
    }


# 415 for a body that is neither JSON (in UTF-8: JSON has no other charset) nor
# gRPC (gRPC clients); media types compare lowercased, without spaces.
JSON_BODY_SCRIPT = """
local BODY_METHODS = {POST = true, PUT = true, PATCH = true}
local ACCEPTED = {
  ["application/json"] = true,
  ["application/json;charset=utf-8"] = true,
  ["application/grpc"] = true,
}

function envoy_on_request(request)
  local headers = request:headers()
  if not BODY_METHODS[headers:get(":method")] then
    return
  end
  local media_type = string.gsub(string.lower(headers:get("content-type") or ""), "%s", "")
  if ACCEPTED[media_type] or string.find(media_type, "^application/grpc%+") then
    return
  end
  local body = request:body()
  if body == nil or body:length() == 0 then
    return
  end
  request:respond({[":status"] = "415"}, "Content-Type must be application/json")
end
"""


def _json_body_filter() -> dict[str, Any]:
    """415 for a request body that is not JSON.

    Browsers send text/plain, form and multipart bodies to another site without
    asking it first (a CORS "simple request"), so accepting them would let any
    web page post registrations or logins from its visitors' browsers. A POST
    without a body (logout) needs no content type.
    """
    return {
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": JSON_BODY_SCRIPT},
        },
    }


def _rate_limit_filter() -> dict[str, Any]:
    """Token buckets on the routes that configure one (the public RPCs'); off elsewhere."""
    return {
        "name": RATE_LIMIT_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3"
            ".LocalRateLimit",
            "stat_prefix": "public",
        },
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
            # 400), not a call with the parameter silently dropped. Unknown members
            # of a JSON body, by contrast, are dropped: grpc-httpjson-transcoding
            # always parses with ignore_unknown_fields, and Envoy has no option to
            # refuse them.
            "request_validation_options": {
                "reject_unknown_method": True,
                "reject_unknown_query_parameters": True,
            },
            "max_request_body_size": MAX_REQUEST_BODY_BYTES,
        },
    }


def _route_config(
    settings: EnvoySettings, services: Sequence[ServiceDescription]
) -> dict[str, Any]:
    # Routes see the path after transcoding: /<package>.<Service>/<Method>, or
    # the path a gRPC client sent; the first match wins, so an RPC's own route
    # comes before its service's.
    routes: list[dict[str, Any]] = []
    for spec in services:
        # Only other services may call these, with their credential: the edge
        # answers as for a path that does not exist, REST or gRPC alike.
        routes += [_not_found({"path": method}) for method in sorted(spec.internal_methods)]
        routes += [
            _public_method_route(spec, method, settings.public_rate_limits)
            for method in sorted(spec.public_methods)
        ]
        routes += [
            {"match": {"prefix": f"/{grpc_service}/"}, "route": _route_action(spec)}
            for grpc_service in spec.grpc_services
        ]
    return {
        "name": "rest",
        "virtual_hosts": [
            {
                "name": "warmhouse",
                "domains": ["*"],
                # Only a service may present a service credential, and never via the edge.
                "request_headers_to_remove": [SERVICE_TOKEN_HEADER],
                "routes": [*routes, _not_found({"prefix": "/"})],
            }
        ],
    }


def _route_action(spec: ServiceDescription) -> dict[str, Any]:
    return {
        "cluster": spec.name,
        "timeout": ROUTE_TIMEOUT,
        # Safe for any method: the service never saw the request (e.g.
        # a replica that stopped accepting during a rolling restart).
        "retry_policy": {"retry_on": "connect-failure,refused-stream", "num_retries": 2},
    }


def _not_found(match: dict[str, Any]) -> dict[str, Any]:
    return {
        "match": match,
        "direct_response": {"status": 404, "body": {"inline_string": "no such endpoint"}},
    }


def _public_method_route(
    spec: ServiceDescription, method: str, limits: PublicRateLimits
) -> dict[str, Any]:
    """The service's route, with a token bucket of its own for this public RPC."""
    verbs = {verb for verb, _ in http_routes(method)}
    bucket = limits.reads if verbs == {"GET"} else limits.writes
    return {
        "match": {"path": method},
        "route": _route_action(spec),
        "typed_per_filter_config": {RATE_LIMIT_FILTER: _token_bucket(method, bucket)},
    }


def _token_bucket(method: str, bucket: TokenBucket) -> dict[str, Any]:
    always = {"numerator": 100, "denominator": "HUNDRED"}
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3"
        ".LocalRateLimit",
        # e.g. public_warmhouse_user_v1_UserService_Login.rate_limited
        "stat_prefix": "public" + re.sub(r"[^A-Za-z0-9]", "_", method),
        "token_bucket": {
            "max_tokens": bucket.burst,
            "tokens_per_fill": bucket.per_second,
            "fill_interval": "1s",
        },
        "filter_enabled": {"default_value": always, "runtime_key": "warmhouse.rate_limit.enabled"},
        "filter_enforced": {
            "default_value": always,
            "runtime_key": "warmhouse.rate_limit.enforced",
        },
        # A 429 says when to try again.
        "enable_retry_after_header": True,
        "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
    }


def _local_reply_config() -> dict[str, Any]:
    """Envoy's own error replies (401, 404, 413, 503, ...) as google.rpc.Status-like JSON."""
    by_status = [_status_mapper(status, code) for status, code in GRPC_CODE_BY_HTTP_STATUS.items()]
    any_other_error = {
        "filter": _status_filter("GE", 400),
        "body_format_override": _status_body(GRPC_UNKNOWN),
    }
    return {"mappers": [*by_status, any_other_error]}


def _status_mapper(status: int, grpc_code: int) -> dict[str, Any]:
    mapper: dict[str, Any] = {
        "filter": _status_filter("EQ", status),
        "body_format_override": _status_body(grpc_code),
    }
    if status in LOCAL_REPLY_MESSAGES:
        mapper["body"] = {"inline_string": LOCAL_REPLY_MESSAGES[status]}
    return mapper


def _status_filter(op: str, status: int) -> dict[str, Any]:
    # Envoy insists on a runtime key; nothing ever sets this one.
    value = {"default_value": status, "runtime_key": "warmhouse.local_reply.status"}
    return {"status_code_filter": {"comparison": {"op": op, "value": value}}}


def _status_body(grpc_code: int) -> dict[str, Any]:
    # The same members the transcoder prints for a service's error.
    return {"json_format": {"code": grpc_code, "message": "%LOCAL_REPLY_BODY%", "details": []}}


def _cluster(
    spec: ServiceDescription, address: SocketAddress, source: str | None
) -> dict[str, Any]:
    bind = (
        {}
        if source is None
        else {"upstream_bind_config": {"source_address": {"address": source, "port_value": 0}}}
    )
    return {
        **bind,
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
