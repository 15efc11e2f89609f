"""What the dispatcher sends: addresses resolved at send time, digests bundled."""

import uuid
from datetime import UTC, datetime

import pytest

from services.notification.dispatcher import (
    CONTACT_UNKNOWN,
    DEACTIVATED,
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
) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=uuid.uuid4(),
        notification_id=uuid.uuid4(),
        user_id=user,
        channel=channel,
        digest=digest,
        attempts=1,
        category="BILLING",
        title=title,
        body=body,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
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
    a, b = claimed("EMAIL", digest=True, title="A"), claimed("EMAIL", digest=True, title="B")
    c = claimed("PUSH", digest=True)
    d = claimed("EMAIL", digest=True, user=other)
    single = claimed("EMAIL")
    jobs = jobs_of([a, single, b, c, d])
    assert [[x.id for x in job] for job in jobs] == [[a.id, b.id], [single.id], [c.id], [d.id]]
    message = outgoing(jobs[0])
    assert message.key == str(a.id)
    assert "- A" in message.body
    assert "- B" in message.body
