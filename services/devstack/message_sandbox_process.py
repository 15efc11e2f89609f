"""The message sandbox (services/message_sandbox: SMTP, SMS and push gateways) as our child."""

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from services.devstack.checkout import CHECKOUT_DIR
from services.devstack.child_process import ChildProcess
from services.devstack.ports import LOOPBACK, free_port
from services.devstack.secrets import ensure_secret_file

STARTUP_TIMEOUT_SECONDS = 15.0
HEALTH_CHECK_TIMEOUT_SECONDS = 1.0


class MessageSandboxProcess:
    """The sandbox's SMTP server on 127.0.0.1:`smtp_port`, its gateways at `http_url`.

    The SMS and push API keys are made on first start in files only their owner
    may read (by default under `root`), and stay the same across restarts; the
    messages it received are forgotten when it stops.
    """

    def __init__(
        self,
        root: Path,
        *,
        sms_api_key_file: Path | None = None,
        push_api_key_file: Path | None = None,
        smtp_port: int | None = None,
        http_port: int | None = None,
    ) -> None:
        """`sms_api_key_file`, `push_api_key_file`: where Notification reads the same keys."""
        self.root = root.resolve()
        self.smtp_port = smtp_port or free_port()
        self.http_port = http_port or free_port()
        self.sms_api_key_file = sms_api_key_file or self.root / "sms-api-key"
        self._push_api_key_file = push_api_key_file or self.root / "push-api-key"
        # Made now: a stack hands the keys to Notification before the sandbox starts.
        ensure_secret_file(self.sms_api_key_file)
        ensure_secret_file(self._push_api_key_file)
        self.process = ChildProcess("message-sandbox", self.root / "message-sandbox.log")

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def sms_api_key(self) -> str:
        return self.sms_api_key_file.read_text().strip()

    @property
    def push_api_key(self) -> str:
        return self._push_api_key_file.read_text().strip()

    def start(self) -> None:
        command = [
            sys.executable,
            *("-m", "services.message_sandbox", "--host", LOOPBACK),
            *("--smtp-port", str(self.smtp_port), "--http-port", str(self.http_port)),
            *("--sms-api-key-file", str(self.sms_api_key_file)),
            *("--push-api-key-file", str(self._push_api_key_file)),
        ]
        # The checkout first on the path, whichever directory the stack runs from.
        python_path = os.pathsep.join(
            filter(None, [str(CHECKOUT_DIR), os.environ.get("PYTHONPATH")])
        )
        self.process.start(
            command,
            is_ready=self._is_healthy,
            timeout=STARTUP_TIMEOUT_SECONDS,
            env={**os.environ, "PYTHONPATH": python_path},
        )

    def stop(self) -> None:
        self.process.stop()

    def _is_healthy(self) -> bool:
        # The SMTP server listens before the gateways serve: healthy means both.
        try:
            with urllib.request.urlopen(
                f"{self.http_url}/healthz", timeout=HEALTH_CHECK_TIMEOUT_SECONDS
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False
