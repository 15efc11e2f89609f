"""The payment sandbox over a real socket: charges, idempotency, transfers, signed webhooks.

Each test starts its own sandbox in-process on 127.0.0.1:0, delivering webhooks
to a tiny recording receiver (also on port 0), with fast retries so a test
never waits long for a retry.
"""

import hashlib
import hmac
import http.client
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services.payment_sandbox.answers import Answer
from services.payment_sandbox.errors import IdempotencyConflict
from services.payment_sandbox.idempotency import IdempotencyLedger
from services.payment_sandbox.records import Charge
from services.payment_sandbox.sandbox import Sandbox
from services.payment_sandbox.server import MAX_BODY_BYTES, SandboxServer
from services.payment_sandbox.store import Collection
from services.payment_sandbox.webhooks import RetryPolicy, Webhooks, retry_delay, should_retry
from tests.polling import wait_until

API_KEY = "sk_test_" + "k" * 32
WEBHOOK_SECRET = b"whsec_" + b"s" * 40
HANG_SECONDS = 1.0
FAST_RETRIES = RetryPolicy(first_delay=0.05, max_delay=0.2, attempt_timeout=5.0)
SIGNATURE_TOLERANCE_SECONDS = 300
# How often test servers look for shutdown(): the default half second, per test, adds up.
POLL_SECONDS = 0.02
# Looks like something a careless error message might repeat back.
MARKER = "ECHO-MARKER-7f3a"

JsonObject = dict[str, Any]


# A verifier written from the package docstring alone, as Billing will write its own.


def verify(secret: bytes, header: str, body: bytes, now: float) -> bool:
    parts = [part.split("=", 1) for part in header.split(",")]
    pairs = [(part[0], part[1]) for part in parts if len(part) == 2]
    timestamps = [value for name, value in pairs if name == "t"]
    signatures = [value for name, value in pairs if name == "v1"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        return False
    timestamp = int(timestamps[0])
    if abs(now - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret, timestamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


# The webhook receiver


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    received: float

    @property
    def event(self) -> JsonObject:
        document: JsonObject = json.loads(self.body)
        return document


@dataclass
class Receiver:
    """Records every delivery; answers the scripted statuses first, then 200."""

    statuses: list[int] = field(default_factory=list)
    slow_references: set[str] = field(default_factory=set)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks"

    def events(self, type_: str | None = None) -> list[JsonObject]:
        with self.lock:
            events = [delivery.event for delivery in self.deliveries]
        return [event for event in events if type_ is None or event["type"] == type_]

    def record(self, delivery: Delivery) -> int:
        if delivery.event["data"]["object"]["reference"] in self.slow_references:
            time.sleep(1.0)
        with self.lock:
            self.deliveries.append(delivery)
            return self.statuses.pop(0) if self.statuses else 200


def _receiver_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {name.lower(): value for name, value in self.headers.items()}
            status = receiver.record(Delivery(headers, body, time.monotonic()))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _receiver_handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True).start()
    yield receiver
    server.shutdown()
    server.server_close()


# The sandbox and its client


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> JsonObject:
        document: JsonObject = json.loads(self.body)
        return document


@dataclass
class Client:
    port: int
    api_key: str | None = API_KEY
    timeout: float = 10.0

    def call(
        self,
        method: str,
        path: str,
        body: JsonObject | bytes | None = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        raw = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        if self.api_key is not None:
            sent["Authorization"] = f"Bearer {self.api_key}"
        if key is not None:
            sent["Idempotency-Key"] = key
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=raw, headers=sent)
            response = connection.getresponse()
            return Reply(response.status, response.read())
        finally:
            connection.close()

    def charge(self, reference: str, source: str = "tok_visa", amount: int = 1250) -> Reply:
        body = {"amount": amount, "currency": "RUB", "source": source, "reference": reference}
        return self.call("POST", "/v1/charges", body, key=f"key-{reference}")

    def transfer(self, reference: str) -> Reply:
        body = {"amount": 50000, "currency": "RUB", "reference": reference}
        return self.call("POST", "/v1/transfers", body, key=f"key-{reference}")

    def charges_with_reference(self, reference: str) -> list[JsonObject]:
        data: list[JsonObject] = self.call("GET", f"/v1/charges?reference={reference}").json()[
            "data"
        ]
        return data

    def all_charges(self) -> list[JsonObject]:
        data: list[JsonObject] = self.call("GET", "/v1/sandbox/charges").json()["data"]
        return data


StartSandbox = Callable[..., Client]


@pytest.fixture
def start_sandbox(receiver: Receiver) -> Iterator[StartSandbox]:
    """Starts sandboxes with the given Sandbox options; stops them after the test."""
    servers: list[SandboxServer] = []

    def start(**options: Any) -> Client:
        webhooks = Webhooks(receiver.url, WEBHOOK_SECRET, FAST_RETRIES)
        sandbox = Sandbox(webhooks, **{"hang_seconds": HANG_SECONDS, **options})
        server = SandboxServer(("127.0.0.1", 0), sandbox, API_KEY)
        sandbox.start()
        threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True).start()
        servers.append(server)
        return Client(server.port)

    yield start
    for server in servers:
        server.shutdown()
        server.sandbox.stop()
        server.server_close()


@pytest.fixture
def client(start_sandbox: StartSandbox) -> Client:
    return start_sandbox()


# Charges


def test_a_visa_charge_succeeds_and_is_found_by_id_and_by_reference(client: Client) -> None:
    reply = client.charge("pay-1", amount=1250)

    assert reply.status == 200
    charge = reply.json()
    assert charge["id"].startswith("ch_")
    assert charge["object"] == "charge"
    assert (charge["amount"], charge["currency"], charge["reference"]) == (1250, "RUB", "pay-1")
    assert (charge["status"], charge["failure_code"]) == ("succeeded", None)
    assert abs(charge["created"] - time.time()) < 60
    assert client.call("GET", f"/v1/charges/{charge['id']}").json() == charge
    assert client.charges_with_reference("pay-1") == [charge]
    assert client.charges_with_reference("pay-2") == []


@pytest.mark.parametrize(
    ("source", "failure_code"),
    [
        ("tok_chargeDeclined", "card_declined"),
        ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("tok_chargeDeclinedExpiredCard", "expired_card"),
        ("tok_chargeDeclinedProcessingError", "processing_error"),
    ],
)
def test_a_declined_card_is_a_402_and_the_charge_is_recorded_as_failed(
    client: Client, source: str, failure_code: str
) -> None:
    reply = client.charge("pay-1", source=source)

    assert reply.status == 402
    error = reply.json()["error"]
    assert (error["type"], error["code"]) == ("card_error", failure_code)
    charge = client.call("GET", f"/v1/charges/{error['charge']}").json()
    assert (charge["status"], charge["failure_code"]) == ("failed", failure_code)
    assert charge["failure_message"]


def test_an_unknown_token_is_a_400_that_neither_echoes_it_nor_charges(client: Client) -> None:
    reply = client.charge("pay-1", source=f"tok_{MARKER}")

    assert reply.status == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert MARKER.encode() not in reply.body
    assert client.all_charges() == []


def test_an_unknown_charge_or_transfer_is_a_404(client: Client) -> None:
    assert client.call("GET", "/v1/charges/ch_0000").status == 404
    assert client.call("GET", "/v1/transfers/tr_0000").status == 404
    assert client.call("POST", "/v1/sandbox/transfers/tr_0000/arrive").status == 404
    assert client.call("GET", "/v1/nothing").status == 404


# Idempotency


@pytest.mark.parametrize("source", ["tok_visa", "tok_chargeDeclined"])
def test_the_same_key_and_body_replay_the_first_answer_and_charge_once(
    client: Client, source: str
) -> None:
    first = client.charge("pay-1", source=source)
    again = client.charge("pay-1", source=source)

    assert again == first
    assert len(client.all_charges()) == 1


def test_the_same_body_in_another_field_order_is_the_same_request(client: Client) -> None:
    body = {"amount": 100, "currency": "RUB", "source": "tok_visa", "reference": "pay-1"}
    reordered = dict(reversed(body.items()))

    first = client.call("POST", "/v1/charges", body, key="k")
    again = client.call("POST", "/v1/charges", reordered, key="k")

    assert again == first
    assert len(client.all_charges()) == 1


def test_twenty_concurrent_requests_with_one_key_wait_for_the_first_and_charge_once(
    client: Client,
) -> None:
    # tok_hang keeps the first in progress while the other nineteen arrive.
    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(lambda _: client.charge("pay-1", "tok_hang"), range(20)))

    assert {reply.status for reply in replies} == {200}
    assert len({reply.body for reply in replies}) == 1
    assert replies[0].json()["status"] == "succeeded"
    assert len(client.all_charges()) == 1


def test_the_same_key_with_another_body_or_endpoint_is_a_409(client: Client) -> None:
    client.charge("pay-1", amount=1250)

    other_amount = client.charge("pay-1", amount=1300)
    other_endpoint = client.call(
        "POST",
        "/v1/transfers",
        {"amount": 1250, "currency": "RUB", "reference": "pay-1"},
        key="key-pay-1",
    )

    for reply in (other_amount, other_endpoint):
        assert reply.status == 409
        assert reply.json()["error"]["type"] == "idempotency_error"
    assert len(client.all_charges()) == 1


def test_a_rejected_request_does_not_use_up_its_key(client: Client) -> None:
    bad = {"amount": 0, "currency": "RUB", "source": "tok_visa", "reference": "pay-1"}
    assert client.call("POST", "/v1/charges", bad, key="k").status == 400

    fixed = client.call("POST", "/v1/charges", {**bad, "amount": 10}, key="k")

    assert fixed.status == 200


def test_a_charge_without_an_idempotency_key_is_a_400(client: Client) -> None:
    body = {"amount": 10, "currency": "RUB", "source": "tok_visa", "reference": "pay-1"}

    reply = client.call("POST", "/v1/charges", body)

    assert reply.status == 400
    assert "Idempotency-Key" in reply.json()["error"]["message"]
    assert client.all_charges() == []


def test_the_ledger_runs_a_key_once_and_refuses_it_for_another_request() -> None:
    ledger = IdempotencyLedger(capacity=10)
    runs: list[int] = []

    def produce() -> Answer:
        runs.append(len(runs))
        return Answer(200, str(len(runs)).encode())

    assert ledger.run("k", "request a", produce) == ledger.run("k", "request a", produce)
    with pytest.raises(IdempotencyConflict):
        ledger.run("k", "request b", produce)
    assert len(runs) == 1


def test_a_request_that_crashed_answers_500_to_its_repeats_too() -> None:
    ledger = IdempotencyLedger(capacity=10)

    def crash() -> Answer:
        raise RuntimeError("bug")

    first = ledger.run("k", "a", crash)

    assert first.status == 500
    assert ledger.run("k", "a", crash) == first


# A charge whose answer is late


def test_a_hanging_charge_is_pending_until_its_late_answer_then_succeeded(
    client: Client, receiver: Receiver
) -> None:
    impatient = Client(client.port, timeout=0.3)
    with pytest.raises(TimeoutError):
        impatient.charge("pay-1", "tok_hang")

    [pending] = client.charges_with_reference("pay-1")
    assert pending["status"] == "pending"
    assert receiver.events() == []

    wait_until(
        lambda: client.charges_with_reference("pay-1")[0]["status"] == "succeeded",
        timeout=HANG_SECONDS + 5,
        what="the hanging charge succeeding",
    )
    [event] = wait_until(lambda: receiver.events("charge.succeeded"), what="its webhook")
    assert event["data"]["object"]["id"] == pending["id"]


def test_a_hanging_charge_can_end_declined_with_nothing_charged(
    client: Client, receiver: Receiver
) -> None:
    impatient = Client(client.port, timeout=0.3)
    with pytest.raises(TimeoutError):
        impatient.charge("pay-2", "tok_hangDeclined")

    assert client.charges_with_reference("pay-2")[0]["status"] == "pending"
    wait_until(
        lambda: client.charges_with_reference("pay-2")[0]["status"] == "failed",
        timeout=HANG_SECONDS + 5,
        what="the hanging charge declined",
    )
    [event] = wait_until(lambda: receiver.events("charge.failed"), what="its webhook")
    assert event["data"]["object"]["failure_code"] == "processing_error"


# Transfers


def test_a_transfer_stays_pending_until_it_arrives_then_sends_its_webhook(
    client: Client, receiver: Receiver
) -> None:
    transfer = client.transfer("invoice-1").json()
    assert transfer["id"].startswith("tr_")
    assert transfer["status"] == "pending"
    assert transfer["bank_reference"].startswith("WH-")
    assert client.call("GET", f"/v1/transfers/{transfer['id']}").json() == transfer

    arrived = client.call("POST", f"/v1/sandbox/transfers/{transfer['id']}/arrive")

    assert arrived.status == 200
    assert arrived.json()["status"] == "succeeded"
    [event] = wait_until(lambda: receiver.events("transfer.succeeded"), what="the webhook")
    assert event["data"]["object"] == arrived.json()
    listed = client.call("GET", "/v1/transfers?reference=invoice-1").json()["data"]
    assert listed == [arrived.json()]


def test_a_returned_transfer_fails_once_and_cannot_then_arrive(
    client: Client, receiver: Receiver
) -> None:
    transfer_id = client.transfer("invoice-1").json()["id"]

    failed = client.call("POST", f"/v1/sandbox/transfers/{transfer_id}/fail").json()
    arrive = client.call("POST", f"/v1/sandbox/transfers/{transfer_id}/arrive")

    assert (failed["status"], failed["failure_code"]) == ("failed", "transfer_returned")
    assert arrive.status == 409
    wait_until(lambda: receiver.events("transfer.failed"), what="the webhook")
    assert receiver.events("transfer.succeeded") == []


def test_transfers_arrive_on_their_own_after_transfer_seconds(
    start_sandbox: StartSandbox, receiver: Receiver
) -> None:
    client = start_sandbox(transfer_seconds=0.2)
    transfer_id = client.transfer("invoice-1").json()["id"]

    [event] = wait_until(lambda: receiver.events("transfer.succeeded"), what="the arrival")

    assert event["data"]["object"]["id"] == transfer_id


# Webhooks


def test_webhooks_carry_a_signature_that_verifies_by_the_documented_scheme(
    client: Client, receiver: Receiver
) -> None:
    charge = client.charge("pay-1").json()

    [delivery] = wait_until(lambda: receiver.deliveries, what="the webhook")

    assert delivery.headers["content-type"] == "application/json"
    event = delivery.event
    assert event["id"].startswith("evt_")
    assert (event["object"], event["type"]) == ("event", "charge.succeeded")
    assert event["data"]["object"] == charge
    header = delivery.headers["sandbox-signature"]
    assert verify(WEBHOOK_SECRET, header, delivery.body, now=time.time())
    assert not verify(WEBHOOK_SECRET, header, delivery.body + b" ", now=time.time())
    assert not verify(b"another secret of at least 32 bytes!", header, delivery.body, time.time())
    assert not verify(WEBHOOK_SECRET, header, delivery.body, now=time.time() + 3600)


def test_a_failing_receiver_gets_the_same_event_until_it_answers_2xx(
    client: Client, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500]
    client.charge("pay-1")

    deliveries = wait_until(lambda: receiver.deliveries[2:] and receiver.deliveries, what="3")

    assert len({delivery.body for delivery in deliveries}) == 1
    assert all(
        verify(WEBHOOK_SECRET, d.headers["sandbox-signature"], d.body, time.time())
        for d in deliveries
    )
    [event] = client.call("GET", "/v1/sandbox/events").json()["data"]
    assert event["delivery"] == {
        "attempts": 3,
        "delivered": True,
        "last_status": 200,
        "last_error": None,
    }
    time.sleep(0.5)  # longer than any retry's wait: no fourth delivery comes
    assert len(receiver.deliveries) == 3


def test_duplicates_mode_sends_each_event_that_many_extra_times(
    client: Client, receiver: Receiver
) -> None:
    mode = client.call("POST", "/v1/sandbox/webhooks/mode", {"duplicates": 2})
    assert mode.status == 200

    client.charge("pay-1")

    events = wait_until(lambda: receiver.events()[2:] and receiver.events(), what="3 copies")
    assert len({event["id"] for event in events}) == 1


def test_shuffle_mode_holds_deliveries_and_sends_them_in_random_order(
    client: Client, receiver: Receiver
) -> None:
    delay = 0.5
    client.call("POST", "/v1/sandbox/webhooks/mode", {"delay_seconds": delay, "shuffle": True})
    references = [f"pay-{n}" for n in range(10)]
    started = time.monotonic()

    for reference in references:
        client.charge(reference)

    assert receiver.deliveries == []
    events = wait_until(lambda: receiver.events()[9:] and receiver.events(), what="10 events")
    assert min(d.received for d in receiver.deliveries) - started >= delay
    received = [event["data"]["object"]["reference"] for event in events]
    assert sorted(received) == sorted(references)
    assert received != references


def test_replay_sends_every_event_once_more(client: Client, receiver: Receiver) -> None:
    for reference in ("pay-1", "pay-2", "pay-3"):
        client.charge(reference)
    first = wait_until(lambda: receiver.events()[2:] and receiver.events(), what="3 events")

    replay = client.call("POST", "/v1/sandbox/webhooks/replay").json()

    assert replay["events"] == 3
    both = wait_until(lambda: receiver.events()[5:] and receiver.events(), what="the replay")
    assert sorted(event["id"] for event in both) == sorted(2 * [event["id"] for event in first])


def test_a_slow_receiver_for_one_event_does_not_hold_up_the_next(
    client: Client, receiver: Receiver
) -> None:
    receiver.slow_references = {"slow"}

    client.charge("slow")
    client.charge("fast")

    events = wait_until(lambda: receiver.events()[1:] and receiver.events(), what="both")
    assert [event["data"]["object"]["reference"] for event in events] == ["fast", "slow"]


@pytest.mark.parametrize(
    "mode",
    [{"duplicates": -1}, {"duplicates": 1.5}, {"delay_seconds": -1}, {"shuffle": True}, []],
)
def test_a_webhook_mode_out_of_range_is_a_400(client: Client, mode: Any) -> None:
    assert client.call("POST", "/v1/sandbox/webhooks/mode", mode).status == 400


def test_retries_double_from_half_a_second_up_to_thirty_with_jitter() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)

    delays = [retry_delay(policy, attempts, rng) for attempts in range(1, 21)]

    assert 0.25 <= delays[0] <= 0.5
    assert 0.5 <= delays[1] <= 1.0
    assert all(15.0 <= delay <= 30.0 for delay in delays[7:])
    assert should_retry(policy, 19, seconds_since_first=10)
    assert not should_retry(policy, 20, seconds_since_first=10)
    assert not should_retry(policy, 3, seconds_since_first=3600)


# The edge: authentication, limits, bad input


@pytest.mark.parametrize("authorization", [None, f"Bearer {API_KEY}x", f"Basic {API_KEY}"])
@pytest.mark.parametrize("path", ["/v1/charges/ch_1", "/v1/sandbox/charges", "/v1/nothing"])
def test_a_request_without_the_api_key_is_a_401(
    client: Client, authorization: str | None, path: str
) -> None:
    anonymous = Client(client.port, api_key=None)
    headers = {} if authorization is None else {"Authorization": authorization}

    reply = anonymous.call("GET", path, headers=headers)

    assert reply.status == 401
    assert reply.json()["error"]["type"] == "authentication_error"
    assert API_KEY.encode() not in reply.body


def test_healthz_answers_without_a_key(client: Client) -> None:
    assert Client(client.port, api_key=None).call("GET", "/healthz").status == 200


def test_a_body_over_64_kib_is_a_413_and_charges_nothing(client: Client) -> None:
    body = {"amount": 1, "currency": "RUB", "source": "tok_visa", "reference": "r"}
    huge = json.dumps({**body, "description": "x" * MAX_BODY_BYTES}).encode()

    reply = client.call("POST", "/v1/charges", huge, key="k")

    assert reply.status == 413
    assert client.all_charges() == []


@pytest.mark.parametrize(
    "body",
    [
        f'{{"amount": 1, "{MARKER}'.encode(),
        f'["{MARKER}"]'.encode(),
        b"\xff\xfe" + MARKER.encode(),
        json.dumps({"amount": 1, "currency": "RUB", "source": "tok_visa"}).encode(),
        json.dumps(
            {"amount": MARKER, "currency": "RUB", "source": "tok_visa", "reference": "r"}
        ).encode(),
        json.dumps(
            {"amount": 1, "currency": MARKER, "source": "tok_visa", "reference": "r"}
        ).encode(),
        json.dumps(
            {"amount": True, "currency": "RUB", "source": "tok_visa", "reference": "r"}
        ).encode(),
        json.dumps(
            {"amount": 1, "currency": "RUB", "source": "tok_visa", "reference": "r", MARKER: 1}
        ).encode(),
        json.dumps(
            {"amount": 1, "currency": "RUB", "source": "tok_visa", "reference": "r" * 101}
        ).encode(),
        b'{"amount": NaN, "currency": "RUB", "source": "tok_visa", "reference": "r"}',
    ],
)
def test_a_bad_body_is_a_400_with_a_message_that_does_not_echo_it(
    client: Client, body: bytes
) -> None:
    reply = client.call("POST", "/v1/charges", body, key="k")

    assert reply.status == 400
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert MARKER.encode() not in reply.body
    assert client.all_charges() == []


def test_a_list_without_a_reference_is_a_400(client: Client) -> None:
    assert client.call("GET", "/v1/charges").status == 400
    assert client.call("GET", "/v1/transfers?reference=a&reference=b").status == 400


def test_the_store_forgets_the_oldest_objects_past_its_capacity() -> None:
    charges: Collection[Charge] = Collection(capacity=2)
    for n in range(3):
        charges.add(Charge(f"ch_{n}", 1, "RUB", "same", "", created=0))

    assert [charge["id"] for charge in charges.all()] == ["ch_1", "ch_2"]
    assert [charge["id"] for charge in charges.with_reference("same")] == ["ch_1", "ch_2"]
    assert charges.get("ch_0") is None
