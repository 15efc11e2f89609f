"""Envoy accepts the configuration we render, and it behaves as the edge should."""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.devstack.checkout import CHECKOUT_DIR, DESCRIPTOR_SET
from services.devstack.envoy_config import (
    KUBERNETES_CONFIG_DIR,
    EnvoySettings,
    SocketAddress,
    kubernetes_settings,
    render,
)
from services.devstack.envoy_process import EnvoyConfigError, EnvoyProcess, validate
from services.devstack.ports import free_port
from services.registry import SERVICES
from services.user.signing_keys import ensure_signing_key

SHIPPED_CONFIG = CHECKOUT_DIR / "envoy" / "envoy.yaml"


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = tmp_path_factory.mktemp("keys")
    ensure_signing_key(keys / "private.pem", keys / "jwks.json")
    return keys / "jwks.json"


def local_settings(jwks_file: Path, upstream_port: int) -> EnvoySettings:
    return EnvoySettings(
        listener=SocketAddress("127.0.0.1", free_port()),
        admin=SocketAddress("127.0.0.1", free_port()),
        upstreams={spec.name: SocketAddress("127.0.0.1", upstream_port) for spec in SERVICES},
        descriptor_set=DESCRIPTOR_SET,
        jwks_file=jwks_file,
    )


def test_shipped_config_is_a_fresh_rendering() -> None:
    rendered = json.dumps(render(kubernetes_settings()), indent=2) + "\n"

    assert SHIPPED_CONFIG.read_text() == rendered, (
        "envoy/envoy.yaml is stale: python -m services.devstack.envoy_config --kubernetes "
        "> envoy/envoy.yaml"
    )


def test_envoy_accepts_the_shipped_config(jwks_file: Path, tmp_path: Path) -> None:
    # In the pod these files are mounted under /etc/envoy; point at real ones.
    text = SHIPPED_CONFIG.read_text()
    text = text.replace(str(KUBERNETES_CONFIG_DIR / "warmhouse.binpb"), str(DESCRIPTOR_SET))
    text = text.replace(str(KUBERNETES_CONFIG_DIR / "jwks.json"), str(jwks_file))
    assert str(KUBERNETES_CONFIG_DIR) not in text
    config_file = tmp_path / "envoy.yaml"
    config_file.write_text(text)

    validate(config_file)


def test_envoy_accepts_the_local_config(jwks_file: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "envoy.json"
    config_file.write_text(json.dumps(render(local_settings(jwks_file, free_port()))))

    validate(config_file)


def test_validate_raises_with_envoys_explanation(tmp_path: Path) -> None:
    config_file = tmp_path / "envoy.json"
    config_file.write_text(json.dumps({"static_resources": {"no_such_field": 1}}))

    with pytest.raises(EnvoyConfigError, match="no_such_field"):
        validate(config_file)


@pytest.fixture(scope="module")
def edge_without_services(
    jwks_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Envoy with the local config whose upstreams are not running; yields its URL."""
    settings = local_settings(jwks_file, upstream_port=free_port())
    work_dir = tmp_path_factory.mktemp("envoy")
    config_file = work_dir / "envoy.json"
    config_file.write_text(json.dumps(render(settings)))
    admin = settings.admin
    envoy = EnvoyProcess(
        config_file, work_dir / "envoy.log", ready_url=f"http://{admin.host}:{admin.port}/ready"
    )
    envoy.start()
    try:
        yield f"http://{settings.listener.host}:{settings.listener.port}"
    finally:
        envoy.stop()


def request(
    url: str, method: str = "GET", body: bytes | None = None
) -> tuple[int, dict[str, object]]:
    call = urllib.request.Request(
        url, data=body, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(call, timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_healthz_is_503_while_a_service_is_down(edge_without_services: str) -> None:
    status, body = request(f"{edge_without_services}/healthz")

    assert (status, body["code"]) == (503, 14)


def test_missing_token_is_401_with_a_status_body(edge_without_services: str) -> None:
    status, body = request(f"{edge_without_services}/users/8f0e6c4a")

    assert status == 401
    assert body == {"code": 16, "message": "Jwt is missing", "details": []}


def test_public_route_needs_no_token(edge_without_services: str) -> None:
    # Registration passes the token check and the transcoder; only the absent
    # upstream stops it.
    status, body = request(f"{edge_without_services}/users", "POST", b'{"email": "a@b.c"}')

    assert (status, body["code"]) == (503, 14)


def test_unknown_query_parameter_is_400(edge_without_services: str) -> None:
    status, body = request(f"{edge_without_services}/users?color=red", "POST", b"{}")

    assert (status, body["code"]) == (400, 3)
