"""A service's description names the services it calls: the network policies
(services/devstack/kubernetes.py) let exactly those connections through, so a
call the description forgets would be refused in the cluster, not in tests."""

import ast
from pathlib import Path

import pytest

from services.registry import SERVICES
from services.runtime.service import ServiceDescription

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


def addressed_services(package: Path, root: Path = SERVICES_DIR) -> dict[str, list[str]]:
    """Service name → where in `package` its address is read (`env.service_address("x")`)."""
    found: dict[str, list[str]] = {}
    for source_file in sorted(package.rglob("*.py")):
        tree = ast.parse(source_file.read_text(), str(source_file))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "service_address"
            ):
                continue
            where = f"{source_file.relative_to(root)}:{node.lineno}"
            [argument] = node.args
            # A computed name could not be checked against the description.
            assert isinstance(argument, ast.Constant), f"{where}: name the service literally"
            assert isinstance(argument.value, str), where
            found.setdefault(argument.value, []).append(where)
    return found


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_calls_are_exactly_the_services_whose_address_the_service_reads(
    spec: ServiceDescription,
) -> None:
    addressed = addressed_services(SERVICES_DIR / spec.python_name)

    assert (SERVICES_DIR / spec.python_name / "bootstrap.py").is_file()
    missing = sorted(set(addressed) - set(spec.calls))
    assert missing == [], (
        f"{spec.name} calls {missing} ({addressed}) but its description's `calls` "
        "does not say so: the cluster's network policies would refuse the connection"
    )
    unused = sorted(set(spec.calls) - set(addressed))
    assert unused == [], f"{spec.name}'s `calls` names {unused}, whose address it never reads"


def test_every_called_service_is_registered() -> None:
    names = {spec.name for spec in SERVICES}

    assert {callee for spec in SERVICES for callee in spec.calls} <= names


def test_the_scan_finds_a_call_in_any_module_of_the_package(tmp_path: Path) -> None:
    package = tmp_path / "support"
    (package / "jobs").mkdir(parents=True)
    (package / "jobs" / "escalation.py").write_text(
        'def build(env):\n    return env.service_address("notification")\n'
    )

    assert addressed_services(package, tmp_path) == {
        "notification": ["support/jobs/escalation.py:2"]
    }


def test_a_service_cannot_call_itself_or_a_non_name() -> None:
    with pytest.raises(ValueError, match="no other service"):
        ServiceDescription(name="space", grpc_services=(), calls=("space",))
    with pytest.raises(ValueError, match="no other service"):
        ServiceDescription(name="space", grpc_services=(), calls=("User",))
