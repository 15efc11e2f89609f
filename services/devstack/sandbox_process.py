"""A sandbox of the outside world (`python -m services.<sandbox>` from this
checkout) as our child: started means its `/healthz` answers 200."""

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from services.devstack.checkout import CHECKOUT_DIR
from services.devstack.child_process import ChildProcess

STARTUP_TIMEOUT_SECONDS = 15.0
HEALTH_CHECK_TIMEOUT_SECONDS = 1.0


def start_sandbox(
    process: ChildProcess, module: str, arguments: Sequence[str], health_url: str
) -> None:
    # The checkout first on the path, whichever directory the stack runs from.
    python_path = os.pathsep.join(filter(None, [str(CHECKOUT_DIR), os.environ.get("PYTHONPATH")]))
    process.start(
        [sys.executable, "-m", module, *arguments],
        is_ready=lambda: _answers_healthy(health_url),
        timeout=STARTUP_TIMEOUT_SECONDS,
        env={**os.environ, "PYTHONPATH": python_path},
    )


def _answers_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_CHECK_TIMEOUT_SECONDS) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
