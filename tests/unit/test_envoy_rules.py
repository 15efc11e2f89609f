"""Envoy's token rules follow the services' own list of public RPCs."""

from typing import Any

from services.devstack.envoy_config import http_routes, kubernetes_settings, render


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
    }


def test_everything_else_requires_a_token() -> None:
    last = jwt_rules(render(kubernetes_settings()))[-1]
    assert last == {"match": {"prefix": "/"}, "requires": {"provider_name": "warmhouse"}}


def test_routes_are_read_from_the_http_annotations() -> None:
    assert http_routes("/warmhouse.user.v1.UserService/GetUser") == [("GET", "/users/{user_id}")]
    assert http_routes("/warmhouse.user.v1.UserService/DeleteUser") == [
        ("DELETE", "/users/{user_id}")
    ]
