"""The message sandbox's store and request checks, without sockets."""

import json
from pathlib import Path

import pytest

from services.message_sandbox import cli, validation
from services.message_sandbox.store import (
    EMAIL,
    PERMANENT,
    PUSH,
    SMS,
    TRANSIENT,
    DeliveryRefused,
    MessageStore,
    StoredMessage,
)
from services.payment_sandbox.errors import InvalidRequest

USER_ID = "5f0c8a9e-3b7d-4c1e-9a2f-0d6b1e4c7a38"


def sms(key: str, to: str = "+79991234567", body: str = "Код: 1234") -> StoredMessage:
    return StoredMessage(SMS, (to,), "", body, key, 1.5, id=f"sms_{key}")


def email(to: tuple[str, ...], subject: str = "Счёт оплачен") -> StoredMessage:
    return StoredMessage(EMAIL, to, subject, "Тело", "<k@warmhouse>", 2.5, sender="a@b.example")


def test_a_repeated_key_returns_the_first_message_and_stores_nothing_new() -> None:
    store = MessageStore()

    first = store.deliver(sms("k1", body="first"), idempotent=True)
    again = store.deliver(sms("k1", body="second"), idempotent=True)

    assert again == first
    assert [m["body"] for m in store.messages(SMS)] == ["first"]
    # Keys are per channel: the same key on push is another delivery.
    push = StoredMessage(PUSH, (USER_ID,), "t", "b", "k1", 1.0, id="push_1")
    assert store.deliver(push, idempotent=True) == push
    assert len(store.messages(PUSH)) == 1


def test_email_is_never_deduplicated() -> None:
    store = MessageStore()
    store.deliver(email(("a@x.example",)), idempotent=False)
    store.deliver(email(("a@x.example",)), idempotent=False)
    assert len(store.messages(EMAIL)) == 2


def test_injected_failures_are_used_in_order_per_channel_and_store_nothing() -> None:
    store = MessageStore()
    assert store.add_failures(SMS, 1, TRANSIENT) == 1
    assert store.add_failures(SMS, 1, PERMANENT) == 2

    kinds = []
    for _ in range(2):
        with pytest.raises(DeliveryRefused) as refused:
            store.deliver(sms("k"), idempotent=True)
        kinds.append(refused.value.kind)
    store.deliver(email(("a@x.example",)), idempotent=False)  # other channel: unaffected

    assert kinds == [TRANSIENT, PERMANENT]
    assert store.messages(SMS) == []
    # The key was not remembered by the failed attempts: the retry is delivered.
    assert store.deliver(sms("k"), idempotent=True).id == "sms_k"
    assert len(store.messages(SMS)) == 1


def test_a_remembered_key_is_answered_without_using_a_failure() -> None:
    store = MessageStore()
    first = store.deliver(sms("k"), idempotent=True)
    store.add_failures(SMS, 1, PERMANENT)

    assert store.deliver(sms("k"), idempotent=True) == first
    with pytest.raises(DeliveryRefused):
        store.deliver(sms("other"), idempotent=True)


def test_messages_are_listed_in_arrival_order_filtered_by_recipient_and_bounded() -> None:
    store = MessageStore(capacity=3)
    for index in range(4):
        store.deliver(sms(f"k{index}", to=f"+7999000000{index}"), idempotent=True)
    store.deliver(email(("a@x.example", "b@x.example")), idempotent=False)

    assert [m["idempotencyKey"] for m in store.messages(SMS)] == ["k2", "k3"]
    assert [m["to"] for m in store.messages(SMS, to="+79990000003")] == ["+79990000003"]
    [mail] = store.messages(EMAIL, to="b@x.example")
    assert mail == {
        "channel": "email",
        "from": "a@b.example",
        "recipients": ["a@x.example", "b@x.example"],
        "subject": "Счёт оплачен",
        "body": "Тело",
        "messageId": "<k@warmhouse>",
        "receivedAt": 2.5,
    }
    assert store.messages(EMAIL, to="c@x.example") == []


def test_reset_forgets_messages_keys_and_failures() -> None:
    store = MessageStore()
    store.deliver(sms("k", body="before"), idempotent=True)
    store.add_failures(SMS, 5, TRANSIENT)

    store.reset()

    assert store.messages(SMS) == []
    assert store.deliver(sms("k", body="after"), idempotent=True).body == "after"


def test_pending_failures_are_capped() -> None:
    store = MessageStore()
    store.add_failures(PUSH, 1000, TRANSIENT)
    assert store.add_failures(PUSH, 1000, TRANSIENT) == 1000


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_valid_sms_and_push_requests_are_read() -> None:
    assert validation.sms_request(body(to="+15550000000", body="x" * 1600)).to == "+15550000000"
    push = validation.push_request(body(userId=USER_ID, title="Привет", body="тело"))
    assert (push.user_id, push.title, push.body) == (USER_ID, "Привет", "тело")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"to": "79991234567", "body": "x"}, "phone_invalid"),
        ({"to": "+0123", "body": "x"}, "phone_invalid"),
        ({"to": "+1234567890123456", "body": "x"}, "phone_invalid"),
        ({"to": 79991234567, "body": "x"}, "phone_invalid"),
        ({"to": "+79991234567", "body": ""}, "parameter_invalid"),
        ({"to": "+79991234567", "body": "x" * 1601}, "parameter_invalid"),
        ({"to": "+79991234567"}, "parameter_missing"),
        ({"to": "+79991234567", "body": "x", "from": "y"}, "parameter_unknown"),
    ],
)
def test_bad_sms_requests_are_refused_without_echo(fields: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        validation.sms_request(body(**fields))
    assert refused.value.code == code
    assert "7999" not in refused.value.message


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"userId": "not-a-uuid", "title": "t", "body": "b"}, "user_id_invalid"),
        ({"userId": "{" + USER_ID[:-2] + "}", "title": "t", "body": "b"}, "user_id_invalid"),
        ({"userId": USER_ID, "title": "t" * 201, "body": "b"}, "parameter_invalid"),
        ({"userId": USER_ID, "title": "t", "body": "b" * 4001}, "parameter_invalid"),
        ({"userId": USER_ID, "title": "t"}, "parameter_missing"),
    ],
)
def test_bad_push_requests_are_refused(fields: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        validation.push_request(body(**fields))
    assert refused.value.code == code


def test_failure_requests_are_checked() -> None:
    failure = validation.failure_request(body(channel="email", count=3, kind="permanent"))
    assert (failure.channel, failure.count, failure.kind) == ("email", 3, "permanent")
    for fields in (
        {"channel": "fax", "count": 1, "kind": "transient"},
        {"channel": "sms", "count": 0, "kind": "transient"},
        {"channel": "sms", "count": True, "kind": "transient"},
        {"channel": "sms", "count": 1001, "kind": "transient"},
        {"channel": "sms", "count": 1, "kind": "sometimes"},
    ):
        with pytest.raises(InvalidRequest):
            validation.failure_request(body(**fields))


def test_the_messages_query_needs_one_channel_and_takes_one_recipient() -> None:
    assert validation.messages_query({"channel": ["sms"]}) == ("sms", None)
    assert validation.messages_query({"channel": ["push"], "to": [USER_ID]}) == ("push", USER_ID)
    for query in (
        {},
        {"channel": ["sms", "push"]},
        {"channel": ["fax"]},
        {"channel": ["sms"], "x": ["1"]},
    ):
        with pytest.raises(InvalidRequest):
            validation.messages_query(query)


def test_the_command_line_reads_both_keys_and_exits_2_on_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sms").write_text("sms-key\n")
    (tmp_path / "push").write_text("push-key\n")
    keys = [
        "--sms-api-key-file",
        str(tmp_path / "sms"),
        "--push-api-key-file",
        str(tmp_path / "push"),
    ]

    args = cli.parse(["--smtp-port", "0", "--http-port", "0", *keys])
    assert (args.host, args.smtp_port, args.http_port) == ("127.0.0.1", 0, 0)
    assert args.api_keys == {"sms": "sms-key", "push": "push-key"}

    for bad, complaint in (
        (["--smtp-port", "70000", "--http-port", "0", *keys], "--smtp-port"),
        (
            [
                "--smtp-port",
                "0",
                "--http-port",
                "0",
                *keys[:2],
                "--push-api-key-file",
                "/nonexistent",
            ],
            "--push-api-key-file",
        ),
        (["--smtp-port", "0", *keys], "--http-port"),
    ):
        with pytest.raises(SystemExit) as exited:
            cli.parse(bad)
        assert exited.value.code == 2
        assert complaint in capsys.readouterr().err
