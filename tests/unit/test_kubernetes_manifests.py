"""The Kubernetes manifests: fresh renderings of the registry, with the
connections, hardening and secrets the services need."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.devstack import kubernetes
from services.devstack.kubernetes import (
    BASE_OUT,
    DRAIN_SECONDS,
    GRPC_PORT,
    PRE_STOP_SECONDS,
    PROD_OUT,
    base_files,
    dev_secret_files,
    prod_files,
    write_dev_secrets,
)
from services.registry import SERVICES
from services.runtime.service import ServiceDescription

REGENERATE = "python -m services.devstack.kubernetes"


def on_disk(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    ("directory", "render"), [(BASE_OUT, base_files), (PROD_OUT, prod_files)], ids=["base", "prod"]
)
def test_committed_manifests_are_a_fresh_rendering(directory: Path, render: Any) -> None:
    committed, fresh = on_disk(directory), render()

    assert sorted(committed) == sorted(fresh), f"{directory} is stale: {REGENERATE}"
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert stale == [], f"{stale} in {directory} are stale: {REGENERATE}"


def objects(file_name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(base_files()[file_name])["items"]
    return items


def one(kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects(f"{name}.yaml") if o["kind"] == kind]
    return found


def by_name(name: str) -> ServiceDescription:
    return next(spec for spec in SERVICES if spec.name == name)


def allowed_callers(name: str) -> list[str | None]:
    """Per ingress rule: the one pod name it lets in, None for anyone."""
    rules = one("NetworkPolicy", name)["spec"]["ingress"]
    callers: list[str | None] = []
    for rule in rules:
        assert rule["ports"] == [{"protocol": "TCP", "port": GRPC_PORT}]
        if "from" not in rule:
            callers.append(None)
            continue
        [peer] = rule["from"]
        callers.append(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
    return callers


def test_each_service_lets_in_exactly_its_callers_one_rule_each() -> None:
    assert allowed_callers("user") == ["envoy", "space", "billing"]
    assert allowed_callers("space") == ["envoy", "device"]
    assert allowed_callers("device") == ["envoy", "space", "device-adapter"]
    assert allowed_callers("support") == ["envoy"]
    # Hardware connects from anywhere; no service calls it over gRPC.
    assert allowed_callers("device-adapter") == [None]


def egress_targets(name: str) -> list[tuple[str, tuple[int, ...]]]:
    found = []
    for rule in one("NetworkPolicy", name)["spec"]["egress"]:
        ports = tuple(port["port"] for port in rule["ports"])
        peer = rule["to"][0]
        label = peer.get("podSelector", {}).get("matchLabels", {})
        target = label.get("app.kubernetes.io/name") or label.get("cnpg.io/cluster") or "internet"
        found.append((target, ports))
    return found


def test_each_service_reaches_what_it_calls_nats_its_database_and_the_internet_if_it_must() -> None:
    assert egress_targets("space") == [
        ("user", (GRPC_PORT,)),
        ("device", (GRPC_PORT,)),
        ("nats", (4222,)),
        ("space-db", (5432,)),
    ]
    assert egress_targets("billing")[-1] == ("internet", (443, 465, 587))
    assert egress_targets("notification")[-1] == ("internet", (443, 465, 587))
    assert egress_targets("device-adapter") == [("device", (GRPC_PORT,)), ("nats", (4222,))]
    for spec in SERVICES:
        assert (egress_targets(spec.name)[-1][0] == "internet") is spec.reaches_outside


def test_envoy_reaches_every_service_behind_the_edge_and_no_other() -> None:
    [policy] = [o for o in objects("edge.yaml") if o["kind"] == "NetworkPolicy"]
    reached = [
        rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in policy["spec"]["egress"]
    ]

    assert reached == [spec.name for spec in SERVICES if spec.behind_edge]
    assert "device-adapter" not in reached


def test_a_new_call_opens_both_ends() -> None:
    support = by_name("support")
    calls_user = ServiceDescription(
        name=support.name, grpc_services=support.grpc_services, calls=("user",)
    )
    services = [calls_user if spec is support else spec for spec in SERVICES]

    user_in = kubernetes.network_policy(by_name("user"), services)["spec"]["ingress"]
    support_out = kubernetes.network_policy(calls_user, services)["spec"]["egress"]
    assert {"app.kubernetes.io/name": "support"} in [
        rule["from"][0]["podSelector"]["matchLabels"] for rule in user_in
    ]
    assert support_out[0]["to"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "user"
    }


def deployments() -> list[dict[str, Any]]:
    names = [*(f"{spec.name}.yaml" for spec in SERVICES), "edge.yaml"]
    return [o for name in names for o in objects(name) if o["kind"] == "Deployment"]


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["metadata"]["name"])
def test_every_pod_is_hardened_and_bounded(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    security = container["securityContext"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    assert "readinessProbe" in container
    assert "livenessProbe" in container
    assert pod["terminationGracePeriodSeconds"] > PRE_STOP_SECONDS + DRAIN_SECONDS


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_a_service_runs_its_module_and_reports_health_over_grpc(spec: ServiceDescription) -> None:
    [container] = one("Deployment", spec.name)["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}

    assert container["image"] == kubernetes.IMAGE
    assert container["args"] == [spec.module]
    assert container["readinessProbe"]["grpc"] == {"port": GRPC_PORT}
    assert container["startupProbe"]["grpc"] == {"port": GRPC_PORT}
    assert one("Service", spec.name)["spec"]["ports"][0]["name"] == "grpc"
    # $(NATS_TOKEN) expands only when declared before the URL.
    names = list(env)
    assert names.index("NATS_TOKEN") < names.index("WARMHOUSE_NATS_URL")
    assert ("WARMHOUSE_DATABASE_URL" in env) is spec.owns_database
    for variable in spec.secret_files:
        assert env[variable]["value"].startswith("/var/run/secrets/warmhouse/")


def referenced_secrets() -> set[tuple[str, str]]:
    """(Secret, key) pairs the base reads, but CloudNativePG's own."""
    found: set[tuple[str, str]] = set()
    for deployment in deployments():
        pod = deployment["spec"]["template"]["spec"]
        for volume in pod["volumes"]:
            for source in volume.get("projected", {}).get("sources", []):
                if "secret" in source:
                    for item in source["secret"]["items"]:
                        found.add((source["secret"]["name"], item["key"]))
        for item in pod["containers"][0].get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref["name"].endswith("-db-app"):
                found.add((ref["name"], ref["key"]))
    return found


def test_the_dev_secrets_are_every_secret_the_manifests_read(tmp_path: Path) -> None:
    write_dev_secrets(tmp_path)
    written = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    kustomization = json.loads(written.pop("kustomization.yaml"))

    generated = {
        (generator["name"], source.split("=")[0])
        for generator in kustomization["secretGenerator"]
        for source in generator["files"]
    }
    assert generated == referenced_secrets()
    assert sorted(written) == sorted(f.file_name for f in dev_secret_files())
    assert written["jwt-signing.pem"].startswith(b"-----BEGIN PRIVATE KEY-----")
    # Run again: the keys stay (tokens already issued remain valid).
    write_dev_secrets(tmp_path)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == {
        **written,
        "kustomization.yaml": (tmp_path / "kustomization.yaml").read_bytes(),
    }


def test_dev_tokens_are_plain_words_that_any_config_reads(tmp_path: Path) -> None:
    # NATS reads its token from its config, where "-…" is taken for a number.
    for attempt in range(50):
        directory = tmp_path / str(attempt)
        write_dev_secrets(directory)
        token = (directory / "nats-token").read_text()
        assert re.fullmatch(r"[a-z][0-9a-f]{64}", token), token
