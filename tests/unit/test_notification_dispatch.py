# Russian text is Cyrillic on purpose.
# ruff: noqa: RUF001
"""What the dispatcher sends: addresses resolved at send time, digests bundled."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notification import templates
from services.notification.dispatcher import (
    CONTACT_UNKNOWN,
    DEACTIVATED,
    DIGEST_KEYS,
    NO_PHONE,
    jobs_of,
    outgoing,
)
from services.notification.repository import ClaimedDelivery, Reach
from services.notification.senders import DeliveryError

USER = uuid.uuid4()
REACH = Reach("ann@example.com", "+79990001122", "en", True)


def claimed(
    channel: str,
    *,
    digest: bool = False,
    reach: Reach | None = REACH,
    title: str = "Title",
    body: str = "Body",
    user: uuid.UUID = USER,
    created_at: datetime = datetime(2025, 1, 1, tzinfo=UTC),
    delivery_id: uuid.UUID | None = None,
) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=delivery_id or uuid.uuid4(),
        notification_id=uuid.uuid4(),
        user_id=user,
        channel=channel,
        digest=digest,
        attempts=1,
        category="BILLING",
        title=title,
        body=body,
        created_at=created_at,
        reach=reach,
    )


def test_each_channel_is_addressed_from_the_profile_with_the_delivery_id_as_key() -> None:
    email, sms, push = claimed("EMAIL"), claimed("SMS"), claimed("PUSH")
    assert outgoing([email]).to == "ann@example.com"
    assert outgoing([email]).key == str(email.id)
    assert outgoing([sms]).to == "+79990001122"
    assert outgoing([sms]).body == "Title\nBody"
    assert outgoing([push]).to == str(USER)
    assert (outgoing([push]).subject, outgoing([push]).body) == ("Title", "Body")


def test_sms_is_cut_to_1600_characters() -> None:
    assert len(outgoing([claimed("SMS", body="y" * 3000)]).body) == 1600


def reason(delivery: ClaimedDelivery) -> tuple[str, bool]:
    with pytest.raises(DeliveryError) as raised:
        outgoing([delivery])
    return raised.value.reason, raised.value.permanent


def test_unknown_contact_is_transient_a_missing_phone_and_deactivation_permanent() -> None:
    assert reason(claimed("EMAIL", reach=None)) == (CONTACT_UNKNOWN, False)
    assert reason(claimed("SMS", reach=Reach("a@b.c", "", "en", True))) == (NO_PHONE, True)
    assert reason(claimed("PUSH", reach=Reach("a@b.c", "", "en", False))) == (DEACTIVATED, True)


def test_digests_are_bundled_per_user_and_channel_and_others_go_alone() -> None:
    other = uuid.uuid4()
    later = datetime(2025, 1, 2, tzinfo=UTC)
    # B is older: it goes first whatever order they were claimed in.
    a = claimed("EMAIL", digest=True, title="A", created_at=later)
    b = claimed("EMAIL", digest=True, title="B")
    c = claimed("PUSH", digest=True)
    d = claimed("EMAIL", digest=True, user=other)
    single = claimed("EMAIL")
    jobs = jobs_of([a, single, b, c, d])
    assert [[x.id for x in job] for job in jobs] == [[b.id, a.id], [single.id], [c.id], [d.id]]
    message = outgoing(jobs[0])
    assert message.body == "- B\n- A"


def test_a_digests_key_names_its_deliveries_whichever_was_claimed_first() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    # Same created_at: ordered by id.
    low = claimed("EMAIL", digest=True, created_at=at, delivery_id=uuid.UUID(int=1))
    high = claimed("EMAIL", digest=True, created_at=at, delivery_id=uuid.UUID(int=2))
    older = claimed("EMAIL", digest=True, created_at=at - timedelta(hours=1))
    expected = str(uuid.uuid5(DIGEST_KEYS, ",".join(sorted(str(x.id) for x in (low, high, older)))))
    for order in ([low, high, older], [high, older, low], [older, low, high]):
        [job] = jobs_of(order)
        assert [x.id for x in job] == [older.id, low.id, high.id]
        assert outgoing(job).key == expected
    # Another set of deliveries is another message: another key.
    assert outgoing(jobs_of([low, high])[0]).key != expected


CYRILLIC_SUBJECT = "Не работает отопление в спальне" * 7  # 217 characters


def test_push_title_and_body_are_cut_to_the_gateways_limits() -> None:
    assert len(CYRILLIC_SUBJECT) >= 200
    text = templates.ticket_answered("ru", CYRILLIC_SUBJECT[:200])
    push = outgoing([claimed("PUSH", title=text.title, body=text.body)])
    assert len(push.subject) == 200
    assert push.subject.endswith("…")
    assert push.subject.startswith("Поддержка ответила на ваше обращение «Не работает")
    # E-mail keeps its whole subject; SMS is still title and body in 1600.
    email = outgoing([claimed("EMAIL", title=text.title, body=text.body)])
    assert email.subject == text.title
    # A 30-line digest of such titles: over 4000 characters, cut.
    job = [claimed("PUSH", digest=True, title=text.title) for _ in range(30)]
    digest = outgoing(job)
    assert len(templates.digest("ru", [text.title] * 30).body) > 4000
    assert len(digest.body) <= 4000
    assert digest.body.endswith("…")
    assert len(digest.subject) <= 200


def test_a_cut_never_parts_a_letter_from_its_accent() -> None:
    # "й" written as "и" and a combining breve: cut before the pair, not between.
    decomposed = "ab" + "и\u0306" + "cd"
    assert templates.cut(decomposed, 4) == "ab…"
    assert templates.cut("abcdef", 4) == "abc…"
    assert templates.cut("abcd", 4) == "abcd"
