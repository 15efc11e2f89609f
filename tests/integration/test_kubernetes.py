"""The Kubernetes manifests as `kubectl kustomize` renders them, and the
production install they run.

Every rendered object is checked against the Kubernetes 1.32 API schemas
(CloudNativePG's Clusters against their CRD); every service has its objects,
hardened; production scales and survives a drain; every setting a service reads
is set; a wheel installed without the dev extras imports every service and
serves.
"""

import base64
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import kubernetes_validate
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.devstack.nats_process import NatsProcess
from services.devstack.ports import free_port
from services.devstack.postgres_process import PostgresProcess
from services.registry import SERVICES
from services.runtime.config import GRPC_PORT, ConfigError, Environment, RuntimeSettings
from services.runtime.server import ServiceDefinition
from services.runtime.service import ServiceDescription
from tests.integration.hosts import fresh_database
from tests.integration.test_packaging import build_wheel
from tests.polling import wait_until

CHECKOUT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.32"
OVERLAYS = ("dev", "prod")
CNPG_CLUSTER_SCHEMA = Path(__file__).parent / "schemas" / "cnpg-cluster-v1.json"
# Hardening the checks below waive, by Deployment name, with the reason.
HARDENING_EXCEPTIONS: dict[str, str] = {}
# Placeholder secrets: long enough for every secret a service reads (≥ 32 bytes).
PLACEHOLDER = "placeholder-secret-value-0123456789abcdef"
PLACEHOLDER_DATABASE_URL = "postgresql://placeholder:placeholder@placeholder-db-rw:5432/placeholder"

Manifest = dict[str, Any]


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH: the Kubernetes manifests are not rendered")
    return kubectl


@pytest.fixture(scope="module")
def k8s_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of k8s/ (and envoy/, which it may read), with the dev overlay's
    throwaway secrets made in the copy: the checkout is never written to."""
    _kubectl()
    root = tmp_path_factory.mktemp("checkout")
    for name in ("k8s", "envoy"):
        if (CHECKOUT / name).is_dir():
            shutil.copytree(CHECKOUT / name, root / name)
    make_secrets = root / "k8s" / "overlays" / "dev" / "make-secrets.py"
    assert make_secrets.is_file(), "k8s/overlays/dev/make-secrets.py is missing"
    subprocess.run(
        [sys.executable, str(make_secrets)],
        cwd=make_secrets.parent,
        # It imports the project's code, which the copy lacks.
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(CHECKOUT / "gen"), str(CHECKOUT)])},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return root / "k8s"


@pytest.fixture(scope="module")
def rendered(k8s_tree: Path) -> dict[str, list[Manifest]]:
    """Overlay → the objects `kubectl kustomize` renders for it."""
    out = {}
    for overlay in OVERLAYS:
        directory = k8s_tree / "overlays" / overlay
        assert directory.is_dir(), f"k8s/overlays/{overlay} is missing"
        result = subprocess.run(
            [_kubectl(), "kustomize", str(directory)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"kubectl kustomize {overlay}: {result.stderr}"
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def _named(objects: list[Manifest], kind: str, name: str) -> Manifest | None:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    return None


def _of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def _strict(schema: Any) -> Any:
    """The CRD's schema refusing unknown fields, as the API server's strict
    field validation does (a structural schema otherwise prunes them silently)."""
    if isinstance(schema, dict):
        strict = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def _is_service_workload(obj: Manifest) -> bool:
    names = {service.name for service in SERVICES}
    return obj["kind"] == "Deployment" and obj["metadata"]["name"] in names


# --- every object is valid -------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid_for_kubernetes_1_32(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    cluster_schema = _strict(json.loads(CNPG_CLUSTER_SCHEMA.read_text()))
    problems = []
    for obj in rendered[overlay]:
        what = f"{obj['kind']} {obj['metadata'].get('name')}"
        try:
            if obj["apiVersion"] == "postgresql.cnpg.io/v1" and obj["kind"] == "Cluster":
                jsonschema.validate(obj, cluster_schema)
            else:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except jsonschema.ValidationError as error:
            problems.append(f"{what}: {error.message} at {list(error.absolute_path)}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{what}: no schema for {obj['apiVersion']} (a CRD this test lacks)")
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{what}: {error.message} at {list(error.path)}")
    assert problems == []


# --- every service has its objects, hardened --------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_every_service_has_a_deployment_service_account_and_network_policy(
    rendered: dict[str, list[Manifest]], overlay: str, service: ServiceDescription
) -> None:
    objects = rendered[overlay]
    deployment = _named(objects, "Deployment", service.name)
    assert deployment is not None, f"no Deployment {service.name}"
    assert _named(objects, "ServiceAccount", service.name) is not None
    kube_service = _named(objects, "Service", service.name)
    assert kube_service is not None, f"no Service {service.name}"
    ports = {port.get("name"): port["port"] for port in kube_service["spec"]["ports"]}
    assert ports.get("grpc") == GRPC_PORT
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(kube_service["spec"]["selector"], pod_labels)
    policies = [
        policy
        for policy in _of_kind(objects, "NetworkPolicy")
        if policy["spec"]["podSelector"]
        and _selects(policy["spec"]["podSelector"].get("matchLabels", {}), pod_labels)
    ]
    assert policies, f"no NetworkPolicy selects {service.name}'s pods"
    # NATS (k8s/base/nats) takes clients from WarmHouse pods only.
    assert pod_labels.get("app.kubernetes.io/part-of") == "warmhouse"
    if service.owns_database:
        # Its database (k8s/base/postgres) answers its pods and no other service's.
        database_policy = _named(objects, "NetworkPolicy", f"{service.name}-db")
        assert database_policy is not None
        clients = database_policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
        assert _selects(clients, pod_labels)
        others = [
            obj
            for obj in objects
            if _is_service_workload(obj)
            and obj["metadata"]["name"] != service.name
            and _selects(clients, obj["spec"]["template"]["metadata"]["labels"])
        ]
        assert others == []


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _hardening_problems(deployment: Manifest) -> list[str]:
    pod = deployment["spec"]["template"]["spec"]
    pod_security = pod.get("securityContext", {})
    problems = []
    for container in pod["containers"] + pod.get("initContainers", []):
        security = {**pod_security, **container.get("securityContext", {})}
        name = f"{deployment['metadata']['name']}/{container['name']}"
        if security.get("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation false")
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            problems.append(f"{name}: capabilities drop ALL")
        if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile RuntimeDefault")
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(bound, {})):
                problems.append(f"{name}: resources.{bound} cpu and memory")
        if container in pod.get("initContainers", []):
            continue
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in container:
                problems.append(f"{name}: {probe}")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_is_hardened(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    problems = []
    for deployment in _of_kind(rendered[overlay], "Deployment"):
        if deployment["metadata"]["name"] in HARDENING_EXCEPTIONS:
            continue
        problems += _hardening_problems(deployment)
        if _is_service_workload(deployment):
            [container] = deployment["spec"]["template"]["spec"]["containers"]
            name = deployment["metadata"]["name"]
            # Ready: gRPC health SERVING (its database and NATS up, not draining).
            if container.get("readinessProbe", {}).get("grpc", {}).get("port") != GRPC_PORT:
                problems.append(f"{name}: readinessProbe grpc on 50051")
            # Alive may be "the port answers" (a pod whose database is down
            # is not restarted): gRPC health or a TCP check, on 50051.
            liveness = container.get("livenessProbe", {})
            check = liveness.get("grpc") or liveness.get("tcpSocket") or {}
            if check.get("port") != GRPC_PORT:
                problems.append(f"{name}: livenessProbe grpc or tcpSocket on 50051")
    for statefulset in _of_kind(rendered[overlay], "StatefulSet"):
        problems += _hardening_problems(statefulset)
    assert problems == []
    assert _named(rendered[overlay], "Deployment", "envoy") is not None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_default_deny_network_policy_exists(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    deny_all = [
        policy
        for policy in _of_kind(rendered[overlay], "NetworkPolicy")
        if policy["spec"].get("podSelector") == {}
        and "Ingress" in policy["spec"].get("policyTypes", [])
        and not policy["spec"].get("ingress")
    ]
    assert deny_all, "no NetworkPolicy denies all ingress by default"


def test_production_scales_and_survives_a_drain(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["prod"]
    budgets = _of_kind(objects, "PodDisruptionBudget")
    autoscalers = _of_kind(objects, "HorizontalPodAutoscaler")
    problems = []
    for deployment in _of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if deployment["spec"].get("replicas", 1) < 2:
            problems.append(f"{name}: replicas < 2")
        if not any(
            _selects(budget["spec"]["selector"].get("matchLabels", {}), labels)
            for budget in budgets
        ):
            problems.append(f"{name}: no PodDisruptionBudget")
        if not any(
            scaler["spec"]["scaleTargetRef"]
            == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
            for scaler in autoscalers
        ):
            problems.append(f"{name}: no HorizontalPodAutoscaler")
    for cluster in _of_kind(objects, "Cluster"):
        if cluster["spec"]["instances"] < 2:
            problems.append(f"Cluster {cluster['metadata']['name']}: instances < 2")
    nats = _named(objects, "StatefulSet", "nats")
    assert nats is not None
    assert nats["spec"]["replicas"] == 3
    assert problems == []


def test_the_nats_configuration_is_one_nats_server_accepts(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    [config] = [
        obj
        for obj in _of_kind(rendered["prod"], "ConfigMap")
        if obj["metadata"]["name"].startswith("nats-config")
    ]
    conf = tmp_path / "nats.conf"
    conf.write_text(config["data"]["nats.conf"])
    nats_server = Path(sys.executable).parent / "nats-server"
    result = subprocess.run(
        [str(nats_server), "-c", str(conf), "-t"],
        env={"SERVER_NAME": "nats-0", "NATS_TOKEN": PLACEHOLDER},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr + result.stdout


# --- every setting a service reads is set -----------------------------------


class _Resolver:
    """A container's environment as Kubernetes would give it, with secrets as
    placeholders and mounted files (ConfigMaps: their data; Secrets:
    placeholders) under `root`."""

    def __init__(self, objects: list[Manifest], root: Path) -> None:
        self._objects = objects
        self._root = root

    def _data(self, kind: str, name: str) -> dict[str, str] | None:
        obj = _named(self._objects, kind, name)
        if obj is None:
            return None
        data = dict(obj.get("data", {}))
        if kind == "Secret":
            data = {key: base64.b64decode(value).decode() for key, value in data.items()}
            data.update(obj.get("stringData", {}))
        return data

    def _secret_value(self, name: str, key: str) -> str:
        if key == "uri":
            return PLACEHOLDER_DATABASE_URL
        return PLACEHOLDER

    def environment(self, pod: Manifest, container: Manifest) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self._data("ConfigMap", source["configMapRef"]["name"])
                assert data is not None, f"ConfigMap {source['configMapRef']['name']} not rendered"
                env.update({prefix + key: value for key, value in data.items()})
            if "secretRef" in source:
                data = self._data("Secret", source["secretRef"]["name"]) or {}
                env.update({prefix + key: PLACEHOLDER for key in data})
        for variable in container.get("env", []):
            env[variable["name"]] = self._value(variable, env)
        mounts = self._mounts(pod, container)
        for name, value in env.items():
            for mount_path, local in mounts.items():
                if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                    path = local / value[len(mount_path) :].lstrip("/")
                    if not path.exists():
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text(PLACEHOLDER)
                    env[name] = str(path)
        return env

    def _value(self, variable: Manifest, env: Mapping[str, str]) -> str:
        if "value" in variable:
            # $(NAME) refers to a variable defined earlier; $$ escapes.
            return re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda match: env.get(match[1], match[0]),
                variable["value"],
            )
        source = variable["valueFrom"]
        if "secretKeyRef" in source:
            return self._secret_value(source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = self._data("ConfigMap", ref["name"])
            assert data is not None, f"ConfigMap {ref['name']} not rendered"
            assert ref["key"] in data, f"ConfigMap {ref['name']} has no {ref['key']}"
            return data[ref["key"]]
        if "fieldRef" in source:
            return "placeholder-field"
        return "1"

    def _mounts(self, pod: Manifest, container: Manifest) -> dict[str, Path]:
        """Mount path → a local directory holding what Kubernetes would mount."""
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        mounts: dict[str, Path] = {}
        for index, mount in enumerate(container.get("volumeMounts", [])):
            local = self._root / f"mount-{index}"
            local.mkdir(parents=True, exist_ok=True)
            volume = volumes[mount["name"]]
            sources = [volume]
            if "projected" in volume:
                sources = volume["projected"]["sources"]
            for source in sources:
                for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                    if key not in source:
                        continue
                    name = source[key].get("name") or source[key].get("secretName")
                    data = self._data(kind, name) or {}
                    items = source[key].get("items") or [{"key": k, "path": k} for k in data]
                    for item in items:
                        value = (
                            data.get(item["key"], PLACEHOLDER)
                            if kind == "ConfigMap"
                            else PLACEHOLDER
                        )
                        target = local / item["path"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(value)
            if "subPath" in mount:
                mounts[mount["mountPath"]] = local / mount["subPath"]
            else:
                mounts[mount["mountPath"]] = local
        return mounts


def _build(
    service: ServiceDescription, env: Mapping[str, str]
) -> tuple[ServiceDefinition, RuntimeSettings]:
    bootstrap = importlib.import_module(f"{service.module}.bootstrap")
    built: tuple[ServiceDefinition, RuntimeSettings] = bootstrap.build(Environment(env))
    return built


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_every_setting_a_service_reads_is_set(
    rendered: dict[str, list[Manifest]],
    overlay: str,
    service: ServiceDescription,
    tmp_path: Path,
) -> None:
    objects = rendered[overlay]
    deployment = _named(objects, "Deployment", service.name)
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = _Resolver(objects, tmp_path).environment(pod, container)
    try:
        _, settings = _build(service, env)
    except ConfigError as error:
        pytest.fail(f"{overlay}: {service.name} would not start: {error}")
    # Reachable from other pods, on the port its Service and probes use.
    host, _, port = settings.grpc_address.rpartition(":")
    assert host not in ("127.0.0.1", "localhost", "[::1]"), settings.grpc_address
    assert port == str(GRPC_PORT)
    if service.owns_database:
        assert _database_secret(container, env) == f"{service.name}-db-app"
    expected_replicas = 3 if overlay == "prod" else 1
    assert settings.nats_stream_replicas == expected_replicas


def _database_secret(container: Manifest, env: Mapping[str, str]) -> str | None:
    """The Secret WARMHOUSE_DATABASE_URL comes from (CloudNativePG's, key `uri`)."""
    for variable in container.get("env", []):
        if variable["name"] == "WARMHOUSE_DATABASE_URL":
            ref = variable.get("valueFrom", {}).get("secretKeyRef", {})
            assert ref.get("key") == "uri"
            return str(ref.get("name"))
    return None


# --- the production install -------------------------------------------------


@pytest.fixture
def production_venv(tmp_path: Path) -> Path:
    """A virtualenv with the wheel and only its production dependencies."""
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
        capture_output=True,
        timeout=240,
        env=_clean_environment(),
    )
    return python


def _clean_environment(**extra: str) -> dict[str, str]:
    """No PYTHONPATH: the venv must not see the checkout."""
    keep = ("PATH", "HOME", "LANG", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE")
    return {**{name: os.environ[name] for name in keep if name in os.environ}, **extra}


@pytest.mark.timeout(300)
def test_a_production_install_imports_every_service_and_one_serves(
    production_venv: Path,
    tmp_path: Path,
    postgres: PostgresProcess,
    nats_server: NatsProcess,
    signing_keys: tuple[Path, Path],
) -> None:
    python = str(production_venv)
    imports = "; ".join(f"import {service.module}.bootstrap" for service in SERVICES)
    checks = (
        "import importlib.util, services; "
        "assert importlib.util.find_spec('services.devstack') is None, 'dev code installed'; "
        "assert '/venv/' in services.__file__, services.__file__"
    )
    for code in (imports, checks):
        result = subprocess.run(
            [python, "-c", code],
            cwd=tmp_path,
            env=_clean_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr

    secret = tmp_path / "service-secret"
    secret.write_text(PLACEHOLDER)
    port = free_port()
    env = _clean_environment(
        WARMHOUSE_GRPC_ADDRESS=f"127.0.0.1:{port}",
        WARMHOUSE_DATABASE_URL=fresh_database(postgres),
        WARMHOUSE_NATS_URL=nats_server.url,
        WARMHOUSE_JWKS_FILE=str(signing_keys[1]),
        WARMHOUSE_JWT_PRIVATE_KEY_FILE=str(signing_keys[0]),
        WARMHOUSE_SERVICE_SECRET_FILE=str(secret),
        WARMHOUSE_DRAIN_SECONDS="1",
    )
    log = tmp_path / "user.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [python, "-m", "services.user"], cwd=tmp_path, env=env, stdout=output, stderr=output
        )
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)

                def serving() -> bool:
                    assert process.poll() is None, f"exited: {log.read_text()[-3000:]}"
                    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

                wait_until(serving, timeout=60, interval=0.2, what="User SERVING")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
