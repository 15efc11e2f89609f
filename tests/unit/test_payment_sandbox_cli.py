"""`python -m services.payment_sandbox`: its arguments, and the local stack's wrapper around it."""

import json
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from services.devstack.payment_sandbox_process import PaymentSandboxProcess
from services.devstack.ports import accepts_connections
from services.payment_sandbox import cli

WEBHOOK_URL = "http://127.0.0.1:9/webhooks"


@pytest.fixture
def secret_files(tmp_path: Path) -> tuple[Path, Path]:
    api_key = tmp_path / "api-key"
    api_key.write_text("sk_test_local\n")
    webhook_secret = tmp_path / "webhook-secret"
    webhook_secret.write_text("w" * 32 + "\n")
    return api_key, webhook_secret


def arguments(api_key: Path, webhook_secret: Path, *extra: str) -> list[str]:
    return [
        *("--port", "0", "--api-key-file", str(api_key)),
        *("--webhook-url", WEBHOOK_URL, "--webhook-secret-file", str(webhook_secret)),
        *extra,
    ]


def test_the_arguments_read_both_secrets_and_default_to_loopback(
    secret_files: tuple[Path, Path],
) -> None:
    args = cli.parse(arguments(*secret_files))

    assert (args.host, args.port) == ("127.0.0.1", 0)
    assert (args.api_key, args.webhook_secret) == ("sk_test_local", "w" * 32)
    assert (args.hang_seconds, args.transfer_seconds) == (30.0, None)
    timed = cli.parse(arguments(*secret_files, "--hang-seconds", "1.5", "--transfer-seconds", "2"))
    assert (timed.hang_seconds, timed.transfer_seconds) == (1.5, 2.0)


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        (["--port", "70000"], "--port"),
        (["--webhook-url", "ftp://example.org/hook"], "--webhook-url"),
        (["--webhook-url", "127.0.0.1:8080"], "--webhook-url"),
        (["--hang-seconds", "0"], "--hang-seconds"),
        (["--transfer-seconds", "nan"], "--transfer-seconds"),
        (["--api-key-file", "/nonexistent/key"], "--api-key-file"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(
    secret_files: tuple[Path, Path],
    extra: list[str],
    complaint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.parse(arguments(*secret_files, *extra))

    assert exit_.value.code == 2
    assert complaint in capsys.readouterr().err


@pytest.mark.parametrize(
    ("which", "content", "complaint"),
    [
        (0, "", "--api-key-file: must hold at least 1 bytes"),
        (0, "  \n", "--api-key-file: must hold at least 1 bytes"),
        (1, "s" * 31, "--webhook-secret-file: must hold at least 32 bytes"),
        (1, "x" * 5000, "--webhook-secret-file: larger than 4096 bytes"),
    ],
)
def test_an_empty_api_key_or_a_short_webhook_secret_is_refused(
    secret_files: tuple[Path, Path],
    which: int,
    content: str,
    complaint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret_files[which].write_text(content)

    with pytest.raises(SystemExit):
        cli.parse(arguments(*secret_files))

    assert complaint in capsys.readouterr().err


def test_the_stack_runs_the_sandbox_with_private_secrets_and_stops_it_cleanly(
    tmp_path: Path,
) -> None:
    sandbox = PaymentSandboxProcess(tmp_path, WEBHOOK_URL, hang_seconds=1)
    sandbox.start()
    try:
        for name in ("api-key", "webhook-secret"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
        assert len(sandbox.webhook_secret.encode()) >= 32
        charge = json.dumps(
            {"amount": 100, "currency": "RUB", "source": "tok_visa", "reference": "pay-1"}
        ).encode()
        request = urllib.request.Request(
            f"{sandbox.url}/v1/charges",
            data=charge,
            headers={
                "Authorization": f"Bearer {sandbox.api_key}",
                "Idempotency-Key": "pay-1",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["status"] == "succeeded"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{sandbox.url}/v1/sandbox/charges", timeout=5)
        assert refused.value.code == 401
    finally:
        sandbox.stop()

    # 0, not -SIGTERM: the sandbox caught the signal and shut down in order.
    assert sandbox.process.exit_code == 0
    assert not accepts_connections(sandbox.port)
    assert f"listening on {sandbox.url}" in sandbox.process.log_tail()
