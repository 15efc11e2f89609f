"""The message sandbox (services/message_sandbox: SMTP, SMS and push gateways) as our child."""

from pathlib import Path

from services.devstack.child_process import ChildProcess
from services.devstack.ports import LOOPBACK, free_port
from services.devstack.sandbox_process import start_sandbox
from services.devstack.secrets import ensure_secret_file


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
        arguments = [
            *("--host", LOOPBACK),
            *("--smtp-port", str(self.smtp_port), "--http-port", str(self.http_port)),
            *("--sms-api-key-file", str(self.sms_api_key_file)),
            *("--push-api-key-file", str(self._push_api_key_file)),
        ]
        # The SMTP server listens before the gateways serve: healthy means both.
        start_sandbox(
            self.process, "services.message_sandbox", arguments, f"{self.http_url}/healthz"
        )

    def stop(self) -> None:
        self.process.stop()
