from pathlib import Path

import yaml

from services.devstack import kubernetes_databases
from services.registry import SERVICES

COMMITTED = Path(__file__).resolve().parents[2] / "k8s" / "base" / "postgres"


def test_the_committed_databases_are_a_fresh_render() -> None:
    fresh = kubernetes_databases.render()
    committed = {path.name: path.read_text() for path in COMMITTED.glob("*.yaml")}
    assert committed == fresh, (
        "k8s/base/postgres is stale: run "
        "`python -m services.devstack.kubernetes_databases --out k8s/base/postgres` and commit"
    )


def test_every_service_with_a_database_gets_its_own_cluster_and_no_other() -> None:
    owners = {service.name for service in SERVICES if service.owns_database}
    clusters = {
        service.name: kubernetes_databases.cluster(service)
        for service in SERVICES
        if service.owns_database
    }
    assert set(clusters) == owners
    assert "device-adapter" not in owners
    user = clusters["user"]
    assert user["metadata"]["name"] == "user-db"
    assert user["spec"]["bootstrap"]["initdb"] == {"database": "warmhouse_user", "owner": "user"}
    assert user["spec"]["instances"] == 1
    assert clusters["device"]["spec"]["bootstrap"]["initdb"]["owner"] == "device"


def test_the_yaml_is_read_back_as_written() -> None:
    value = {"a": {"b-c/d.e": [1, "x", {"k": True, "l": []}, {}], "e": "1"}, "z": [["n"]]}
    assert yaml.safe_load(kubernetes_databases.to_yaml(value)) == value
