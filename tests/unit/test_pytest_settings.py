"""pytest's own settings: imports without the Makefile, and no test hangs forever."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]


def run_pytest(test_file: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """pytest with this checkout's settings on `test_file`, without PYTHONPATH."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    pytest = [str(Path(sys.executable).parent / "pytest"), "-c", str(CHECKOUT / "pyproject.toml")]
    return subprocess.run(
        [*pytest, "--rootdir", str(CHECKOUT), "-p", "no:cacheprovider", *options, str(test_file)],
        env=env,
        cwd=test_file.parent,
        capture_output=True,
        text=True,
        check=False,
    )


def test_tests_import_this_checkout_without_pythonpath(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import services.runtime.config, warmhouse.user.v1.user_pb2 as user_pb2\n"
        "def test_probe():\n"
        f"    assert services.runtime.config.__file__.startswith({str(CHECKOUT) + '/'!r})\n"
        f"    assert user_pb2.__file__.startswith({str(CHECKOUT / 'gen') + '/'!r})\n"
        "    import sys\n"
        f"    assert {str(CHECKOUT / 'gen')!r} in sys.path\n"
    )
    result = run_pytest(probe)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_test_has_a_time_limit(pytestconfig: pytest.Config) -> None:
    assert 0 < float(pytestconfig.getini("timeout")) <= 300


def test_a_hung_test_fails_instead_of_hanging(tmp_path: Path) -> None:
    probe = tmp_path / "test_hung.py"
    probe.write_text("import time\ndef test_hung():\n    time.sleep(60)\n")
    started = time.monotonic()
    result = run_pytest(probe, "-o", "timeout=1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Timeout" in result.stdout
    assert time.monotonic() - started < 30
