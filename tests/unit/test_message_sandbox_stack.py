"""The local stack runs the message sandbox for Notification, and tells it where it is."""

from pathlib import Path

from services.billing.description import DESCRIPTION as BILLING
from services.devstack.stack import Stack
from services.notification.description import DESCRIPTION as NOTIFICATION
from services.notification.description import PUSH_API_KEY_ENV, SMS_API_KEY_ENV


def test_notification_gets_the_sandboxs_addresses_and_shares_its_key_files(
    tmp_path: Path,
) -> None:
    local = Stack(tmp_path, http_port=1, services=[NOTIFICATION])
    sandbox = local.message_sandbox
    assert sandbox is not None
    assert local.payment_sandbox is None

    env = local._service_env(NOTIFICATION)

    assert env["WARMHOUSE_NOTIFICATION_SMTP_HOST"] == "127.0.0.1"
    assert env["WARMHOUSE_NOTIFICATION_SMTP_PORT"] == str(sandbox.smtp_port)
    assert env["WARMHOUSE_NOTIFICATION_SMTP_FROM"] == "alerts@warmhouse.example"
    assert env["WARMHOUSE_NOTIFICATION_SMS_URL"] == f"{sandbox.http_url}/v1/sms"
    assert env["WARMHOUSE_NOTIFICATION_PUSH_URL"] == f"{sandbox.http_url}/v1/push"
    # The very keys the sandbox checks.
    assert Path(env[SMS_API_KEY_ENV]).read_text().strip() == sandbox.sms_api_key
    assert Path(env[PUSH_API_KEY_ENV]).read_text().strip() == sandbox.push_api_key
    assert sandbox.sms_api_key != sandbox.push_api_key
    # Started before the services, so listed before them.
    names = [process.name for process in local.processes]
    assert names.index("message-sandbox") < names.index("notification")


def test_a_stack_without_notification_runs_no_message_sandbox(tmp_path: Path) -> None:
    local = Stack(tmp_path, http_port=1, services=[BILLING])

    assert local.message_sandbox is None
    assert local.payment_sandbox is not None
    assert "message-sandbox" not in [process.name for process in local.processes]
    env = local._service_env(BILLING)
    assert env["WARMHOUSE_BILLING_PROVIDER_URL"] == local.payment_sandbox.url
    assert not any(name.startswith("WARMHOUSE_NOTIFICATION_") for name in env)
