"""Envoy's token rules, routes and limits follow the services' own descriptions."""

import dataclasses
from typing import Any

from services.devstack.envoy_config import (
    PublicRateLimits,
    TokenBucket,
    http_routes,
    kubernetes_settings,
    render,
)
from services.runtime.internal_auth import SERVICE_TOKEN_HEADER
from services.runtime.service import ServiceDescription, method_paths


def jwt_rules(config: dict[str, Any]) -> list[dict[str, Any]]:
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    jwt = next(
        f for f in manager["typed_config"]["http_filters"] if f["name"].endswith("jwt_authn")
    )
    rules: list[dict[str, Any]] = jwt["typed_config"]["rules"]
    return rules


def test_public_rest_routes_are_exactly_the_public_rpcs_routes() -> None:
    open_routes = {
        (rule["match"]["headers"][0]["string_match"]["exact"], rule["match"]["path"])
        for rule in jwt_rules(render(kubernetes_settings()))
        if "requires" not in rule and "headers" in rule["match"]
    }
    assert open_routes == {
        ("POST", "/users"),
        ("POST", "/auth/login"),
        ("POST", "/auth/refresh"),
        ("GET", "/.well-known/jwks.json"),
        # The payment provider's webhook: its signature, not a token, authenticates it.
        ("POST", "/billing/provider-events"),
    }


def test_everything_else_requires_a_token() -> None:
    last = jwt_rules(render(kubernetes_settings()))[-1]
    assert last == {"match": {"prefix": "/"}, "requires": {"provider_name": "warmhouse"}}


def test_routes_are_read_from_the_http_annotations() -> None:
    assert http_routes("/warmhouse.user.v1.UserService/GetUser") == [("GET", "/users/{user_id}")]
    assert http_routes("/warmhouse.user.v1.UserService/DeleteUser") == [
        ("DELETE", "/users/{user_id}")
    ]


# Routes -------------------------------------------------------------------------

USER_SERVICE = "warmhouse.user.v1.UserService"


def connection_manager(config: dict[str, Any]) -> dict[str, Any]:
    manager: dict[str, Any] = config["static_resources"]["listeners"][0]["filter_chains"][0][
        "filters"
    ][0]["typed_config"]
    return manager


def virtual_host(config: dict[str, Any]) -> dict[str, Any]:
    host: dict[str, Any] = connection_manager(config)["route_config"]["virtual_hosts"][0]
    return host


def first_route(config: dict[str, Any], path: str) -> dict[str, Any]:
    """The route Envoy picks for `path`: the first whose exact path or prefix matches."""
    for route in virtual_host(config)["routes"]:
        match = route["match"]
        if match.get("path") == path or path.startswith(match.get("prefix", "\0")):
            return dict(route)
    raise AssertionError(f"no route for {path}")


def with_internal_method(method: str) -> ServiceDescription:
    return ServiceDescription(
        name="user",
        grpc_services=(USER_SERVICE,),
        public_methods=method_paths(USER_SERVICE, "Login"),
        internal_methods=method_paths(USER_SERVICE, method),
    )


def test_an_internal_method_is_a_404_wherever_it_is_called_from() -> None:
    config = render(kubernetes_settings(), [with_internal_method("DeleteUser")])

    route = first_route(config, f"/{USER_SERVICE}/DeleteUser")

    assert "route" not in route
    assert route["direct_response"]["status"] == 404


def test_the_other_methods_still_reach_their_service() -> None:
    config = render(kubernetes_settings(), [with_internal_method("DeleteUser")])

    for method in ("GetUser", "UpdateUser", "Login"):
        assert first_route(config, f"/{USER_SERVICE}/{method}")["route"]["cluster"] == "user"


def bucket(route: dict[str, Any]) -> dict[str, Any] | None:
    per_filter = route.get("typed_per_filter_config", {})
    limit = per_filter.get("envoy.filters.http.local_ratelimit")
    return None if limit is None else dict(limit["token_bucket"])


def test_public_rpcs_that_write_get_the_tight_bucket() -> None:
    config = render(kubernetes_settings())
    tight = {"max_tokens": 40, "tokens_per_fill": 20, "fill_interval": "1s"}

    for method in ("CreateUser", "Login", "RefreshSession"):
        assert bucket(first_route(config, f"/{USER_SERVICE}/{method}")) == tight, method


def test_public_reads_get_a_loose_bucket_and_token_holders_none() -> None:
    config = render(kubernetes_settings())

    jwks = bucket(first_route(config, f"/{USER_SERVICE}/GetJwks"))
    assert jwks is not None
    assert jwks["tokens_per_fill"] > 20
    assert bucket(first_route(config, f"/{USER_SERVICE}/GetUser")) is None
    assert bucket(first_route(config, f"/{USER_SERVICE}/Logout")) is None


def test_rate_limits_come_from_the_settings() -> None:
    limits = PublicRateLimits(writes=TokenBucket(per_second=500, burst=1000))
    settings = dataclasses.replace(kubernetes_settings(), public_rate_limits=limits)

    login = bucket(first_route(render(settings), f"/{USER_SERVICE}/Login"))

    assert login == {"max_tokens": 1000, "tokens_per_fill": 500, "fill_interval": "1s"}


def test_a_rate_limited_call_says_when_to_retry() -> None:
    route = first_route(render(kubernetes_settings()), f"/{USER_SERVICE}/Login")
    limit = route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]

    assert limit["enable_retry_after_header"] is True
    assert limit["filter_enforced"]["default_value"]["numerator"] == 100


# Headers ------------------------------------------------------------------------


def test_a_service_token_is_stripped_from_every_request() -> None:
    host = virtual_host(render(kubernetes_settings()))

    assert SERVICE_TOKEN_HEADER == "x-warmhouse-service-token"
    assert SERVICE_TOKEN_HEADER in host["request_headers_to_remove"]


def test_filters_run_in_the_order_the_edge_relies_on() -> None:
    names = [f["name"] for f in connection_manager(render(kubernetes_settings()))["http_filters"]]

    assert names == [
        # Sees every answer on its way out, Envoy's own replies included.
        "envoy.filters.http.header_mutation",
        "envoy.filters.http.health_check",
        # Before the transcoder rewrites the content type to application/grpc.
        "envoy.filters.http.lua",
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.grpc_json_transcoder",
        # After it, to see the RPC's route.
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.router",
    ]


def test_answers_are_uncacheable_unsniffable_and_unbranded() -> None:
    manager = connection_manager(render(kubernetes_settings()))
    mutations = manager["http_filters"][0]["typed_config"]["mutations"]["response_mutations"]

    added = {
        m["append"]["header"]["key"]: m["append"]["header"]["value"]
        for m in mutations
        if "append" in m
    }
    assert added == {"cache-control": "no-store", "x-content-type-options": "nosniff"}
    assert {"remove": "server"} in mutations
    assert manager["server_header_transformation"] == "PASS_THROUGH"


def test_envoys_own_415_and_429_read_like_service_errors() -> None:
    mappers = connection_manager(render(kubernetes_settings()))["local_reply_config"]["mappers"]
    by_status = {
        m["filter"]["status_code_filter"]["comparison"]["value"]["default_value"]: m
        for m in mappers
        if m["filter"]["status_code_filter"]["comparison"]["op"] == "EQ"
    }

    assert by_status[415]["body_format_override"]["json_format"]["code"] == 3
    assert by_status[429]["body_format_override"]["json_format"]["code"] == 8
    assert "Retry-After" in by_status[429]["body"]["inline_string"]
