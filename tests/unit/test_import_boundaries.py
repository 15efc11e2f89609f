"""The import-boundary check, on small trees and on the real services/."""

from pathlib import Path

import pytest

from services.devtools import import_boundaries
from services.devtools.import_boundaries import check

CHECKOUT = Path(__file__).resolve().parents[2]


def tree(root: Path, files: dict[str, str]) -> Path:
    """A package `services` under `root` holding `files` (relative path: source)."""
    package = root / "services"
    for relative, source in {"__init__.py": "", **files}.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(package).parents:
            (package / parent / "__init__.py").touch()
        path.write_text(source)
    return package


def found(root: Path, files: dict[str, str]) -> list[str]:
    return [f"{v.importer} imports {v.imported} ({v.rule})" for v in check(tree(root, files))]


def test_a_service_importing_another_service_is_reported_with_file_and_line(
    tmp_path: Path,
) -> None:
    package = tree(
        tmp_path,
        {
            "user/handlers.py": "import os\n\nfrom services.space.domain import Space\n",
            "space/domain.py": "class Space: ...\n",
        },
    )
    [violation] = check(package)
    assert str(violation) == (
        f"{package}/user/handlers.py:3: services.user.handlers imports services.space.domain "
        "(a service never imports another service)"
    )


@pytest.mark.parametrize(
    ("path", "source", "rule"),
    [
        ("user/a.py", "import services.devstack.stack", "a service never imports devstack"),
        ("user/a.py", "from services import devtools", "a service never imports devtools"),
        ("user/a.py", "from services.registry import SERVICES", "never imports the registry"),
        ("user/a.py", "from ..space import domain", "a service never imports another service"),
        ("user/a.py", "def f():\n    from services.space import x", "never imports another"),
        ("runtime/a.py", "from services.user.domain import X", "runtime imports no other part"),
        ("runtime/a.py", "from services import registry", "runtime imports no other part"),
        ("devtools/a.py", "from services.user import bootstrap", "devtools imports only runtime"),
        ("registry.py", "from services.devstack import stack", "registry never imports devstack"),
        ("__init__.py", "from services import runtime", "services/__init__ imports none"),
        ("user/a.py", "from services.message_sandbox import store", "which is dev-only"),
        ("message_sandbox/a.py", "from services.user import x", "a sandbox imports only"),
    ],
)
def test_each_rule_reports_its_violation(tmp_path: Path, path: str, source: str, rule: str) -> None:
    [violation] = found(tmp_path, {path: source})
    assert rule in violation


def test_allowed_imports_are_not_reported(tmp_path: Path) -> None:
    files = {
        "runtime/config.py": "import os\nfrom services.runtime import db\nfrom . import db as d\n",
        "runtime/db.py": "import sqlalchemy\n",
        "user/handlers.py": (
            "from services.runtime.config import Settings\n"
            "from services.user import domain\n"
            "from .domain import rule\n"
            "from warmhouse.user.v1 import user_pb2\n"
        ),
        "user/domain.py": "from services.user.tables import users\n",
        "registry.py": "from services.user.description import D\nfrom services import runtime\n",
        "devtools/protogen.py": "from services.runtime import config\nimport grpc_tools\n",
        "message_sandbox/server.py": "from services.payment_sandbox import answers\n",
        "devstack/stack.py": (
            "from services.registry import SERVICES\n"
            "from services.user.signing_keys import ensure\n"
            "from services.devtools import protogen\n"
        ),
    }
    assert found(tmp_path, files) == []


def test_the_command_lists_violations_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tree(tmp_path, {"user/a.py": "from services.space import b\n", "space/b.py": ""})
    assert import_boundaries.main([str(package)]) == 1
    assert "user/a.py:1: services.user.a imports services.space" in capsys.readouterr().out


def test_the_services_tree_keeps_its_boundaries() -> None:
    assert [str(v) for v in check(CHECKOUT / "services")] == []
    assert import_boundaries.main([str(CHECKOUT / "services")]) == 0
