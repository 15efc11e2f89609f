"""The Kubernetes manifests, derived from the service registry.

Each registered service gets one file (ServiceAccount, settings ConfigMap,
Deployment, Service and the NetworkPolicies that let its callers in and it
out to what it calls); Envoy gets `edge.yaml` and a ConfigMap generated from
its configuration and the descriptor set; `network-policies.yaml` denies all
traffic in the namespace but DNS. Who may connect to whom is derived, never
listed by hand: Envoy reaches every service behind the edge, a service
reaches the ones its description `calls`, a service with public methods and
not behind the edge (the Device Adapter: hardware) is reached from anywhere,
and one that `reaches_outside` may leave the cluster on the providers' ports.
The production overlay's per-Deployment objects (replicas, disruption
budgets, autoscalers, anti-affinity), three copies of each event stream and
three instances of each database are a generated kustomize Component.

Files are JSON, which is also YAML (no YAML library needed). Regenerate after
changing a description, the registry or Envoy's configuration (a test fails
until you do):

    python -m services.devstack.kubernetes
"""

import argparse
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from services.devstack.checkout import CHECKOUT_DIR, DESCRIPTOR_SET
from services.devstack.envoy_config import (
    KUBERNETES_CONFIG_DIR,
    KUBERNETES_GRPC_PORT,
    KUBERNETES_LISTENER_PORT,
    kubernetes_settings,
    render,
)
from services.devstack.layout import JWKS_FILE_NAME, SERVICE_SECRET_FILE_NAME
from services.registry import SERVICES
from services.runtime.service import ServiceDescription
from services.user.description import SIGNING_KEY_FILE_NAME
from services.user.signing_keys import ensure_signing_key

Manifest = dict[str, Any]

BASE_OUT = CHECKOUT_DIR / "k8s" / "base" / "generated"
PROD_OUT = CHECKOUT_DIR / "k8s" / "overlays" / "prod" / "generated"
DEV_SECRETS_DIR = CHECKOUT_DIR / "k8s" / "overlays" / "dev" / "secrets"

# The one image every service runs from (k8s/Containerfile); kustomize's
# `images:` names the real one.
IMAGE = "warmhouse"
ENVOY_IMAGE = "envoyproxy/envoy:v1.40-latest"
# The image's user (k8s/Containerfile) and the envoy image's own.
SERVICE_UID = 10001
ENVOY_UID = 101
PART_OF = "warmhouse"
NAME_LABEL = "app.kubernetes.io/name"
GRPC_PORT = KUBERNETES_GRPC_PORT
HTTP_PORT = KUBERNETES_LISTENER_PORT
NATS_PORT = 4222
POSTGRES_PORT = 5432
DNS_PORT = 53
# HTTPS (payment provider, SMS and push gateways), SMTPS and submission.
OUTSIDE_PORTS = (443, 465, 587)
# "Outside" is the internet, not the cluster's or a private network's addresses.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")
SECRETS_DIR = PurePath("/var/run/secrets/warmhouse")
# A Secret per file holds it under this key (the JWKS under its file name).
SECRET_KEY = "value"
# SIGTERM → NOT_SERVING → drain (WARMHOUSE_DRAIN_SECONDS) → stop; the pod's
# grace covers the pre-stop pause, the drain and the background work's stop.
PRE_STOP_SECONDS = 5
DRAIN_SECONDS = 10
TERMINATION_GRACE_SECONDS = 30
ENVOY_PRE_STOP_SECONDS = 20
# Who may set x-forwarded-for: Envoy, from a pod address. Pod CIDRs differ
# (kind 10.244.0.0/16, k3s 10.42.0.0/16), so every private range is trusted:
# the NetworkPolicies let only Envoy and the services' callers connect.
POD_CIDR_PLACEHOLDER = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
SERVICE_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"cpu": "500m", "memory": "512Mi"},
}
# Envoy runs two worker threads (--concurrency 2).
ENVOY_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "2", "memory": "512Mi"},
}
ENVOY = "envoy"
ENVOY_CONFIG_MAP = "envoy-config"
ENVOY_FILE = "envoy.yaml"
DESCRIPTOR_FILE = "warmhouse.binpb"
NATS = "nats"
NATS_SECRET = "nats-auth"
NATS_TOKEN_KEY = "token"
JWKS_SECRET = "jwks"
SERVICE_SECRET = "service-secret"
PROD_REPLICAS = 3
# Copies of each JetStream stream (one per NATS node in prod: a stream survives
# losing one) and Postgres instances per database (a primary and two standbys).
DEV_STREAM_REPLICAS = 1
PROD_STREAM_REPLICAS = 3
PROD_DATABASE_INSTANCES = 3
STREAM_REPLICAS_SETTING = "WARMHOUSE_NATS_STREAM_REPLICAS"
PROD_MAX_REPLICAS = 10
PROD_CPU_UTILIZATION = 70
# Secrets named otherwise than their file: a file name with a dot is no DNS label.
SECRET_NAMES = {SIGNING_KEY_FILE_NAME: "jwt-signing-key"}
# Settings an operator must choose (the outside world's addresses): the local
# stack points them at its sandboxes; example.com stands for the real ones.
OPERATOR_SETTINGS: Mapping[str, Mapping[str, str]] = {
    "billing": {"WARMHOUSE_BILLING_PROVIDER_URL": "https://payments.example.com"},
    "notification": {
        "WARMHOUSE_NOTIFICATION_SMTP_HOST": "smtp.example.com",
        "WARMHOUSE_NOTIFICATION_SMTP_PORT": "587",
        "WARMHOUSE_NOTIFICATION_SMTP_STARTTLS": "true",
        # The relay's account; its password is the Secret smtp-password.
        "WARMHOUSE_NOTIFICATION_SMTP_USERNAME": "warmhouse",
        "WARMHOUSE_NOTIFICATION_SMTP_FROM": "alerts@warmhouse.example",
        "WARMHOUSE_NOTIFICATION_SMS_URL": "https://sms.example.com/v1/sms",
        "WARMHOUSE_NOTIFICATION_PUSH_URL": "https://push.example.com/v1/push",
    },
}


@dataclass(frozen=True)
class SecretFile:
    """A file under SECRETS_DIR, from one key of one Secret."""

    secret: str
    key: str
    file_name: str

    @property
    def path(self) -> PurePath:
        return SECRETS_DIR / self.file_name


JWKS = SecretFile(JWKS_SECRET, JWKS_FILE_NAME, JWKS_FILE_NAME)
SHARED_SECRET = SecretFile(SERVICE_SECRET, SECRET_KEY, SERVICE_SECRET_FILE_NAME)


def secret_files(spec: ServiceDescription) -> dict[str, SecretFile]:
    """Environment variable → the file it names, for every file the service reads."""
    own = {
        variable: SecretFile(SECRET_NAMES.get(file_name, file_name), SECRET_KEY, file_name)
        for variable, file_name in sorted(spec.secret_files.items())
    }
    return {"WARMHOUSE_JWKS_FILE": JWKS, "WARMHOUSE_SERVICE_SECRET_FILE": SHARED_SECRET, **own}


def database_cluster(spec: ServiceDescription) -> str:
    """Its CloudNativePG Cluster; the operator writes `<cluster>-app` (key `uri`)."""
    return f"{spec.name}-db"


def labels(name: str) -> dict[str, str]:
    return {NAME_LABEL: name, "app.kubernetes.io/part-of": PART_OF}


def metadata(name: str) -> Manifest:
    return {"name": name, "labels": labels(name)}


def pods(name: str) -> Manifest:
    return {"podSelector": {"matchLabels": {NAME_LABEL: name}}}


def tcp(*ports: int) -> list[Manifest]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def callers(spec: ServiceDescription, services: Sequence[ServiceDescription]) -> list[str]:
    """The pods that call `spec` over gRPC: Envoy, if it is behind the edge, and the
    services whose description says they call it."""
    edge = [ENVOY] if spec.behind_edge else []
    return edge + [other.name for other in services if spec.name in other.calls]


def reached_from_anywhere(spec: ServiceDescription) -> bool:
    """Public methods but no route through Envoy: clients outside (hardware) call it directly."""
    return bool(spec.public_methods) and not spec.behind_edge


def service_account(name: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(name),
        # No WarmHouse process talks to the Kubernetes API.
        "automountServiceAccountToken": False,
    }


def settings(spec: ServiceDescription) -> Manifest:
    data = {"WARMHOUSE_LOG_LEVEL": "INFO", STREAM_REPLICAS_SETTING: str(DEV_STREAM_REPLICAS)}
    if spec.behind_edge:
        data["WARMHOUSE_TRUSTED_PROXIES"] = POD_CIDR_PLACEHOLDER
    data.update(OPERATOR_SETTINGS.get(spec.name, {}))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(f"{spec.name}-settings"),
        "data": data,
    }


def _secret_env(name: str, secret: str, key: str) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def environment(spec: ServiceDescription) -> list[Manifest]:
    """The runtime's contract; peer addresses default to `<service>:50051`."""
    env: list[Manifest] = [
        {"name": "WARMHOUSE_GRPC_ADDRESS", "value": f"0.0.0.0:{GRPC_PORT}"},
        # Declared before the URL that expands it.
        _secret_env("NATS_TOKEN", NATS_SECRET, NATS_TOKEN_KEY),
        {"name": "WARMHOUSE_NATS_URL", "value": f"nats://$(NATS_TOKEN)@{NATS}:{NATS_PORT}"},
    ]
    if spec.owns_database:
        env.append(_secret_env("WARMHOUSE_DATABASE_URL", f"{database_cluster(spec)}-app", "uri"))
    env.extend(
        {"name": variable, "value": str(file.path)} for variable, file in secret_files(spec).items()
    )
    env.append({"name": "WARMHOUSE_DRAIN_SECONDS", "value": str(DRAIN_SECONDS)})
    return env


def _secrets_volume(files: Sequence[SecretFile]) -> Manifest:
    return {
        "name": "secrets",
        "projected": {
            # Readable by the pod's group (fsGroup) only.
            "defaultMode": 0o440,
            "sources": [
                {"secret": {"name": f.secret, "items": [{"key": f.key, "path": f.file_name}]}}
                for f in files
            ],
        },
    }


def _container_security(uid: int) -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_spec(name: str, uid: int, container: Manifest, volumes: list[Manifest]) -> Manifest:
    return {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "containers": [container],
        "volumes": [*volumes, {"name": "tmp", "emptyDir": {}}],
    }


def _deployment(name: str, pod_spec: Manifest) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {NAME_LABEL: name}},
            # Never below the wanted count during a rollout.
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels(name)}, "spec": pod_spec},
        },
    }


def deployment(spec: ServiceDescription) -> Manifest:
    grpc_probe = {"grpc": {"port": GRPC_PORT}}
    container = {
        "name": "server",
        "image": IMAGE,
        "args": [spec.module],
        "ports": [{"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"}],
        "env": environment(spec),
        "envFrom": [{"configMapRef": {"name": f"{spec.name}-settings"}}],
        "resources": SERVICE_RESOURCES,
        "securityContext": _container_security(SERVICE_UID),
        # Migrations run before the port opens (waiting on other replicas' lock).
        # Migrations run before the port opens: up to 5 minutes.
        "startupProbe": {**grpc_probe, "periodSeconds": 2, "failureThreshold": 150},
        # SERVING only while its database and NATS are up, and not after SIGTERM.
        "readinessProbe": {**grpc_probe, "periodSeconds": 5, "failureThreshold": 2},
        # Alive is "the server answers": restarting a pod whose database is down
        # would not bring the database back, so not gRPC health.
        "livenessProbe": {"tcpSocket": {"port": GRPC_PORT}, "periodSeconds": 10},
        # Kubernetes takes the pod out of the Services' endpoints while SIGTERM
        # travels; waiting first keeps new calls away before the server drains.
        "lifecycle": {
            "preStop": {
                "exec": {
                    "command": ["python", "-c", f"import time; time.sleep({PRE_STOP_SECONDS})"]
                }
            }
        },
        "volumeMounts": [
            {"name": "secrets", "mountPath": str(SECRETS_DIR), "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    volumes = [_secrets_volume(list(secret_files(spec).values()))]
    return _deployment(spec.name, _pod_spec(spec.name, SERVICE_UID, container, volumes))


def service(spec: ServiceDescription) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(spec.name),
        "spec": {
            # Headless: a name resolves to every ready pod, so Envoy (STRICT_DNS)
            # spreads its HTTP/2 connections over the replicas instead of keeping
            # each on the one kube-proxy chose.
            "clusterIP": "None",
            "selector": {NAME_LABEL: spec.name},
            "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"}],
        },
    }


def _outside_world() -> Manifest:
    return {
        "to": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}},
            {"ipBlock": {"cidr": "::/0", "except": ["fc00::/7", "fe80::/10"]}},
        ],
        "ports": tcp(*OUTSIDE_PORTS),
    }


def network_policy(spec: ServiceDescription, services: Sequence[ServiceDescription]) -> Manifest:
    """In: one rule per caller. Out: what it calls, NATS, its database, the internet if it must.
    (The other ends' policies, NATS's and each database's, are in k8s/base/nats and postgres.)"""
    ingress = [
        {"from": [pods(caller)], "ports": tcp(GRPC_PORT)} for caller in callers(spec, services)
    ]
    if reached_from_anywhere(spec):
        ingress.append({"ports": tcp(GRPC_PORT)})
    egress = [{"to": [pods(callee)], "ports": tcp(GRPC_PORT)} for callee in spec.calls]
    egress.append({"to": [pods(NATS)], "ports": tcp(NATS_PORT)})
    if spec.owns_database:
        cluster = {"podSelector": {"matchLabels": {"cnpg.io/cluster": database_cluster(spec)}}}
        egress.append({"to": [cluster], "ports": tcp(POSTGRES_PORT)})
    if spec.reaches_outside:
        egress.append(_outside_world())
    return _policy(spec.name, {NAME_LABEL: spec.name}, ingress, egress)


def _policy(
    name: str,
    selected: Mapping[str, str],
    ingress: list[Manifest],
    egress: list[Manifest] | None,
) -> Manifest:
    policy_spec: Manifest = {
        "podSelector": {"matchLabels": dict(selected)},
        "policyTypes": ["Ingress"] if egress is None else ["Ingress", "Egress"],
        "ingress": ingress,
    }
    if egress is not None:
        policy_spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": PART_OF}},
        "spec": policy_spec,
    }


def service_objects(
    spec: ServiceDescription, services: Sequence[ServiceDescription]
) -> list[Manifest]:
    return [
        service_account(spec.name),
        settings(spec),
        deployment(spec),
        service(spec),
        network_policy(spec, services),
    ]


def envoy_objects(services: Sequence[ServiceDescription]) -> list[Manifest]:
    config_dir = str(KUBERNETES_CONFIG_DIR)
    container = {
        "name": ENVOY,
        "image": ENVOY_IMAGE,
        "command": ["envoy"],
        "args": ["-c", f"{config_dir}/{ENVOY_FILE}", "--concurrency", "2"],
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "resources": ENVOY_RESOURCES,
        "securityContext": _container_security(ENVOY_UID),
        # Listening, not /healthz (200 only while every upstream is healthy): one
        # service down must not take every route off the Service with it.
        "readinessProbe": {
            "tcpSocket": {"port": HTTP_PORT},
            "periodSeconds": 5,
            "failureThreshold": 2,
        },
        # Not /healthz: a service being down is no reason to restart Envoy.
        "livenessProbe": {"tcpSocket": {"port": HTTP_PORT}, "periodSeconds": 10},
        # Off the Service's endpoints first, then its routes' longest call (15 s)
        # finishes before SIGTERM, on which Envoy stops at once.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(ENVOY_PRE_STOP_SECONDS)]}}},
        "volumeMounts": [
            {"name": "config", "mountPath": config_dir, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    # Envoy's configuration, the descriptor set and the JWKS side by side, as
    # envoy_config.kubernetes_settings() expects them.
    config = {
        "name": "config",
        "projected": {
            "sources": [
                {"configMap": {"name": ENVOY_CONFIG_MAP}},
                {
                    "secret": {
                        "name": JWKS.secret,
                        "items": [{"key": JWKS.key, "path": JWKS.file_name}],
                    }
                },
            ]
        },
    }
    edge_services = [spec.name for spec in services if spec.behind_edge]
    policy = _policy(
        ENVOY,
        {NAME_LABEL: ENVOY},
        # The public entry: clients from anywhere, the payment provider's webhooks.
        [{"ports": tcp(HTTP_PORT)}],
        [{"to": [pods(name)], "ports": tcp(GRPC_PORT)} for name in edge_services],
    )
    edge_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ENVOY),
        "spec": {
            "type": "ClusterIP",
            "selector": {NAME_LABEL: ENVOY},
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return [
        service_account(ENVOY),
        _deployment(ENVOY, _pod_spec(ENVOY, ENVOY_UID, container, [config])),
        edge_service,
        policy,
    ]


def namespace_policies() -> list[Manifest]:
    """Nothing moves in the namespace unless a policy allows it; every pod may resolve names."""
    deny_all = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny-all", "labels": {"app.kubernetes.io/part-of": PART_OF}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    dns = {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [
            {"protocol": "UDP", "port": DNS_PORT},
            {"protocol": "TCP", "port": DNS_PORT},
        ],
    }
    allow_dns = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-dns", "labels": {"app.kubernetes.io/part-of": PART_OF}},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [dns]},
    }
    return [deny_all, allow_dns]


def _document(objects: list[Manifest]) -> bytes:
    listing = {"apiVersion": "v1", "kind": "List", "items": objects}
    return (json.dumps(listing, indent=2) + "\n").encode()


def _kustomization(body: Manifest, kind: str = "Kustomization") -> bytes:
    version = "v1alpha1" if kind == "Component" else "v1beta1"
    header = {"apiVersion": f"kustomize.config.k8s.io/{version}", "kind": kind}
    return (json.dumps({**header, **body}, indent=2) + "\n").encode()


def base_files(services: Sequence[ServiceDescription] = SERVICES) -> dict[str, bytes]:
    """k8s/base/generated: file name → content."""
    files = {f"{spec.name}.yaml": _document(service_objects(spec, services)) for spec in services}
    files["edge.yaml"] = _document(envoy_objects(services))
    files["network-policies.yaml"] = _document(namespace_policies())
    envoy_config = json.dumps(render(kubernetes_settings(), services), indent=2) + "\n"
    files[f"envoy/{ENVOY_FILE}"] = envoy_config.encode()
    files[f"envoy/{DESCRIPTOR_FILE}"] = DESCRIPTOR_SET.read_bytes()
    manifests = ["network-policies.yaml", *(f"{spec.name}.yaml" for spec in services), "edge.yaml"]
    files["kustomization.yaml"] = _kustomization(
        {
            "resources": manifests,
            "configMapGenerator": [
                {
                    "name": ENVOY_CONFIG_MAP,
                    "files": [f"envoy/{ENVOY_FILE}", f"envoy/{DESCRIPTOR_FILE}"],
                }
            ],
        }
    )
    return files


def deployments(services: Sequence[ServiceDescription] = SERVICES) -> list[str]:
    """Every Deployment: all stateless, each can run replicas side by side."""
    return [*(spec.name for spec in services), ENVOY]


def _anti_affinity(name: str) -> Manifest:
    term = {
        "weight": 100,
        "podAffinityTerm": {
            "labelSelector": {"matchLabels": {NAME_LABEL: name}},
            "topologyKey": "kubernetes.io/hostname",
        },
    }
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [term]
                        }
                    }
                }
            }
        },
    }
    return {"target": {"kind": "Deployment", "name": name}, "patch": json.dumps(patch)}


def _stream_replicas(spec: ServiceDescription) -> Manifest:
    name = f"{spec.name}-settings"
    patch = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {STREAM_REPLICAS_SETTING: str(PROD_STREAM_REPLICAS)},
    }
    return {"target": {"kind": "ConfigMap", "name": name}, "patch": json.dumps(patch)}


# Every service's CloudNativePG Cluster (k8s/base/postgres).
_DATABASE_INSTANCES = {
    "target": {"group": "postgresql.cnpg.io", "kind": "Cluster"},
    "patch": json.dumps(
        [{"op": "replace", "path": "/spec/instances", "value": PROD_DATABASE_INSTANCES}]
    ),
}


def _disruption_budget(name: str) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {NAME_LABEL: name}}},
    }


def _autoscaler(name: str) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": PROD_REPLICAS,
            "maxReplicas": PROD_MAX_REPLICAS,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": PROD_CPU_UTILIZATION,
                        },
                    },
                }
            ],
        },
    }


def prod_files(services: Sequence[ServiceDescription] = SERVICES) -> dict[str, bytes]:
    """k8s/overlays/prod/generated, a kustomize Component: file name → content."""
    names = deployments(services)
    return {
        "disruption-budgets.yaml": _document([_disruption_budget(name) for name in names]),
        "autoscalers.yaml": _document([_autoscaler(name) for name in names]),
        "kustomization.yaml": _kustomization(
            {
                "resources": ["disruption-budgets.yaml", "autoscalers.yaml"],
                "replicas": [{"name": name, "count": PROD_REPLICAS} for name in names],
                "patches": [
                    *(_anti_affinity(name) for name in names),
                    *(_stream_replicas(spec) for spec in services),
                    _DATABASE_INSTANCES,
                ],
            },
            kind="Component",
        ),
    }


def dev_secret_files(services: Sequence[ServiceDescription] = SERVICES) -> list[SecretFile]:
    """Every Secret (and key) the manifests read but the database operator's."""
    files = {file for spec in services for file in secret_files(spec).values()}
    files.add(SecretFile(NATS_SECRET, NATS_TOKEN_KEY, "nats-token"))
    return sorted(files, key=lambda f: (f.secret, f.key))


def _throwaway_secret() -> str:
    """Letters and digits, starting with a letter: NATS reads the token from its
    config, where a value starting with "-" is taken for a number and fails."""
    return "k" + secrets.token_hex(32)


def write_dev_secrets(directory: Path, services: Sequence[ServiceDescription] = SERVICES) -> None:
    """Throwaway secrets for the dev overlay, and the kustomization that makes
    Secrets of them; files that exist are kept (re-running changes nothing)."""
    directory.mkdir(parents=True, exist_ok=True)
    signing_key = next(
        f for f in dev_secret_files(services) if f.file_name == SIGNING_KEY_FILE_NAME
    )
    # The JWKS is the signing key's public half.
    ensure_signing_key(directory / signing_key.file_name, directory / JWKS.file_name)
    generators = []
    for file in dev_secret_files(services):
        path = directory / file.file_name
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(_throwaway_secret())
        generators.append({"name": file.secret, "files": [f"{file.key}={file.file_name}"]})
    body = {"secretGenerator": generators, "generatorOptions": {"disableNameSuffixHash": True}}
    (directory / "kustomization.yaml").write_bytes(_kustomization(body))


def write_tree(directory: Path, files: Mapping[str, bytes]) -> None:
    """`directory` holds exactly `files` afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in sorted(directory.rglob("*"), reverse=True):
        relative = stale.relative_to(directory).as_posix()
        if stale.is_file() and relative not in files:
            stale.unlink()
        elif stale.is_dir() and not any(name.startswith(f"{relative}/") for name in files):
            stale.rmdir()
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def main() -> None:
    parser = argparse.ArgumentParser(description="Render WarmHouse's Kubernetes manifests.")
    parser.add_argument("--out", type=Path, default=BASE_OUT, help="the base's generated folder")
    parser.add_argument(
        "--prod-out", type=Path, default=PROD_OUT, help="the prod overlay's generated Component"
    )
    args = parser.parse_args()
    write_tree(args.out, base_files())
    write_tree(args.prod_out, prod_files())


if __name__ == "__main__":
    main()
