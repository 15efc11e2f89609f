"""The whole stack, started once per session, for tests that go through Envoy."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from services.devstack.ports import free_port
from services.devstack.stack import Stack
from services.message_sandbox.inbox import Inbox
from tests.e2e.rest import Rest

if TYPE_CHECKING:
    from tests.e2e.homes import Home, Person

# The User service creates this administrator at start-up when it does not exist.
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "an e2e admin passphrase"
ADMIN_PHONE = "+15550000001"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every registered service behind Envoy; `stack.grpc_address("user")` reaches one directly."""
    env = {
        "WARMHOUSE_ADMIN_EMAIL": ADMIN_EMAIL,
        "WARMHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WARMHOUSE_ADMIN_PHONE": ADMIN_PHONE,
        # Envoy sees every local test client at one address: the per-client
        # ceiling would otherwise be a budget shared by the whole suite.
        "WARMHOUSE_LOGIN_MAX_FAILURES_PER_CLIENT": "10000",
        "WARMHOUSE_REGISTRATIONS_PER_CLIENT": "100000",
        # Expired guests are swept every second, so tests need not wait five.
        "WARMHOUSE_SPACE_EXPIRY_CHECK_SECONDS": "1",
        # A provider that hangs is given up on after 2 s (tok_hang holds 6 s
        # here), and payments stuck 3 s are asked after every second.
        "WARMHOUSE_BILLING_PROVIDER_TIMEOUT_SECONDS": "2",
        "WARMHOUSE_BILLING_RECONCILE_SECONDS": "1",
        "WARMHOUSE_BILLING_RECONCILE_AFTER_SECONDS": "3",
        "WARMHOUSE_BILLING_OVERDUE_CHECK_SECONDS": "1",
        # A gateway call is given up on after 2 s (so a crashed replica's
        # deliveries are free again after 17 s), and SLAs are checked each second.
        "WARMHOUSE_NOTIFICATION_SEND_TIMEOUT_SECONDS": "2",
        "WARMHOUSE_SUPPORT_SLA_CHECK_SECONDS": "1",
        # The access matrix opens a ticket of its owner's per call (the quota
        # itself is tested in tests/integration/test_support_tickets.py).
        "WARMHOUSE_SUPPORT_MAX_OPEN_TICKETS_PER_USER": "100000",
    }
    stack = Stack(
        tmp_path_factory.mktemp("stack"), free_port(), extra_env=env, sandbox_hang_seconds=6
    )
    try:
        with stack as running:
            yield running
    finally:
        # As root PostgreSQL's files live outside the private tmp dir.
        stack.postgres.remove_data()


@pytest.fixture(scope="session")
def base_url(stack: Stack) -> str:
    """Where REST clients connect, e.g. http://127.0.0.1:PORT."""
    return stack.base_url


@pytest.fixture
def api(base_url: str) -> Rest:
    return Rest(base_url)


@pytest.fixture(scope="module")
def home(base_url: str) -> "Home":
    """A home with a room and a member of each role (and a stranger), per test
    module; tests that remove people or delete spaces make their own."""
    # Imported here: tests/e2e/homes.py imports this module's constants.
    from tests.e2e.homes import home_with_members

    return home_with_members(Rest(base_url))


@pytest.fixture(scope="module")
def root(base_url: str) -> "Person":
    """An administrator."""
    from tests.e2e.homes import admin

    return admin(Rest(base_url))


@pytest.fixture
def inbox(stack: Stack) -> Inbox:
    """What people received from the stack's SMTP server and SMS and push gateways."""
    sandbox = stack.message_sandbox
    assert sandbox is not None
    return Inbox(sandbox.http_url, sandbox.sms_api_key)
