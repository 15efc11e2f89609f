"""The payment provider's sandbox (services/payment_sandbox) as our child."""

from pathlib import Path

from services.devstack.child_process import ChildProcess
from services.devstack.ports import LOOPBACK, free_port
from services.devstack.sandbox_process import start_sandbox
from services.devstack.secrets import ensure_secret_file


class PaymentSandboxProcess:
    """The sandbox on 127.0.0.1:`port`, posting its webhooks to `webhook_url`.

    Its API key and webhook secret are made on first start in files under
    `root` that only their owner may read, and stay the same across restarts
    (the sandbox itself forgets its charges when it stops).
    """

    def __init__(
        self,
        root: Path,
        webhook_url: str,
        port: int | None = None,
        hang_seconds: float = 30.0,
        transfer_seconds: float | None = None,
        *,
        api_key_file: Path | None = None,
        webhook_secret_file: Path | None = None,
    ) -> None:
        """`api_key_file`, `webhook_secret_file`: where Billing reads the same key and
        secret (default: files in `root`)."""
        self.root = root.resolve()
        self.port = port or free_port()
        self.webhook_url = webhook_url
        self._hang_seconds = hang_seconds
        self._transfer_seconds = transfer_seconds
        self._api_key_file = api_key_file or self.root / "api-key"
        self._webhook_secret_file = webhook_secret_file or self.root / "webhook-secret"
        # Made now: a stack hands the key and secret to Billing before the sandbox starts.
        ensure_secret_file(self._api_key_file)
        ensure_secret_file(self._webhook_secret_file)
        self.process = ChildProcess("payment-sandbox", self.root / "payment-sandbox.log")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def api_key(self) -> str:
        return self._api_key_file.read_text().strip()

    @property
    def webhook_secret(self) -> str:
        return self._webhook_secret_file.read_text().strip()

    def start(self) -> None:
        arguments = [
            *("--host", LOOPBACK, "--port", str(self.port)),
            *("--api-key-file", str(self._api_key_file)),
            *("--webhook-url", self.webhook_url),
            *("--webhook-secret-file", str(self._webhook_secret_file)),
            *("--hang-seconds", str(self._hang_seconds)),
        ]
        if self._transfer_seconds is not None:
            arguments += ["--transfer-seconds", str(self._transfer_seconds)]
        start_sandbox(self.process, "services.payment_sandbox", arguments, f"{self.url}/healthz")

    def stop(self) -> None:
        self.process.stop()
