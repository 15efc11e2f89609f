"""Notification through Envoy: the inbox (welcome, read, unread, who may),
preferences (defaults, what may be saved, who may), and what people actually
receive from the stack's SMTP server and SMS and push gateways: nothing for a
category turned off, CRITICAL alarms by every channel whatever the
preferences, quiet hours holding back push, the daily digest, retries of
transient failures and none of permanent ones, and nothing sent twice."""

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.devstack.stack import Stack
from services.message_sandbox.inbox import Inbox, text_of
from services.message_sandbox.store import CHANNELS, EMAIL, PUSH, SMS
from tests.e2e.billing_flows import issue_invoice
from tests.e2e.device_loop import Hardware, adapter_address, running
from tests.e2e.homes import Person, ok, pages, person
from tests.e2e.people import Resident, household, received_since, resident
from tests.e2e.rest import Reply, Rest
from tests.polling import eventually

ZONE = ZoneInfo("Europe/Moscow")
DEFAULT_CHANNELS = {
    "DEVICE_STATUS": ["PUSH", "EMAIL"],
    "SAFETY": ["SMS", "PUSH", "EMAIL"],
    "BILLING": ["EMAIL"],
    "SUPPORT": ["EMAIL", "PUSH"],
    "ACCOUNT": ["EMAIL"],
}
DIGEST_SUBJECT = "WarmHouse: your digest"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def notifications(api: Rest, who: Person, query: str = "") -> list[dict[str, Any]]:
    body = ok(api.call("GET", f"/notifications?pageSize=100{query}", token=who.token))
    return list(body["notifications"])


def of_category(api: Rest, who: Person, category: str) -> list[dict[str, Any]]:
    return [n for n in notifications(api, who) if n["category"] == category]


def delivery(notification: dict[str, Any], channel: str) -> dict[str, Any]:
    [found] = [d for d in notification["deliveries"] if d["channel"] == channel]
    return dict(found)


def preferences_path(who: Person) -> str:
    return f"/users/{who.user_id}/notification-preferences"


def save_preferences(api: Rest, caller: Person, owner: Person, **preferences: Any) -> Reply:
    return api.call(
        "PUT", preferences_path(owner), {"preferences": preferences}, token=caller.token
    )


def choice(category: str, *channels: str, digest: bool = False) -> dict[str, Any]:
    return {"category": category, "channels": list(channels), "digest": digest}


def wall(moment: datetime) -> str:
    return moment.astimezone(ZONE).strftime("%H:%M")


async def wait_for(probe: Any, seconds: float, what: str) -> Any:
    return await eventually(probe, within=seconds, interval=0.2, what=what)


def each_sent_once(api: Rest, inbox: Inbox, who: Resident) -> None:
    """Every channel holds exactly one message per SENT delivery (digests
    aside), and no key (Message-ID, Idempotency-Key) is used twice."""
    listed = pages(api, "/notifications", who.person.token, "notifications", page_size=100)
    sent = Counter(
        d["channel"].lower()
        for n in listed
        for d in n["deliveries"]
        if d["status"] == "SENT" and not d["digest"]
    )
    for channel in CHANNELS:
        messages = inbox.messages(channel, who.address(channel))
        keys = [m.get("messageId") or m.get("idempotencyKey") for m in messages]
        assert len(keys) == len(set(keys)), (channel, keys)
        single = [m for m in messages if not text_of(m).startswith(DIGEST_SUBJECT)]
        assert len(single) == sent[channel], (channel, sent, messages)


# The inbox


async def test_registration_welcomes_in_the_users_language_and_lists_an_account_notice(
    api: Rest, root: Person, inbox: Inbox
) -> None:
    since = time.time()
    russian, english = resident(api, "ru"), resident(api)

    def welcomed(who: Resident) -> dict[str, Any]:
        [message] = received_since(inbox, who, EMAIL, since)
        return message

    ru_mail = await wait_for(lambda: welcomed(russian), 15, "the Russian welcome")
    en_mail = await wait_for(lambda: welcomed(english), 15, "the English welcome")
    assert "Добро пожаловать" in text_of(ru_mail), ru_mail
    assert "Welcome" not in text_of(ru_mail), ru_mail
    assert "Welcome to WarmHouse" in text_of(en_mail), en_mail

    def sent_welcome() -> dict[str, Any] | None:
        [notice] = notifications(api, russian.person)
        return notice if delivery(notice, "EMAIL")["status"] == "SENT" else None

    notice = await wait_for(sent_welcome, 10, "the welcome SENT in the list")
    assert notice["category"] == "ACCOUNT"
    assert notice["userId"] == russian.person.user_id
    assert notice["title"] == "Добро пожаловать в WarmHouse"
    assert notice["read"] is False
    assert "readTime" not in notice
    assert [d["channel"] for d in notice["deliveries"]] == ["EMAIL"]
    assert delivery(notice, "EMAIL")["attempts"] == 1

    notification_id = notice["notificationId"]
    path = f"/notifications/{notification_id}:markRead"
    # Someone else's is "not found", and stays unread.
    refused = api.call("POST", path, {}, token=english.person.token)
    assert refused.status == 404, refused
    assert refused.reason == "NOTIFICATION_NOT_FOUND"
    assert api.call("POST", path, {}, token=root.token).status == 404
    assert len(notifications(api, russian.person, "&unreadOnly=true")) == 1

    read = ok(api.call("POST", path, {}, token=russian.person.token))["notification"]
    assert read["read"] is True
    read_time = parse_time(read["readTime"])
    assert abs(read_time - datetime.now(UTC)) < timedelta(minutes=1)
    again = ok(api.call("POST", path, {}, token=russian.person.token))["notification"]
    assert again["read"] is True
    assert parse_time(again["readTime"]) == read_time
    assert notifications(api, russian.person, "&unreadOnly=true") == []
    assert [n["notificationId"] for n in notifications(api, russian.person)] == [notification_id]
    assert len(notifications(api, english.person, "&unreadOnly=true")) == 1

    # An ADMIN reads anyone's list; a user only their own.
    by_admin = notifications(api, root, f"&userId={russian.person.user_id}")
    assert [n["notificationId"] for n in by_admin] == [notification_id]
    refused = api.call(
        "GET", f"/notifications?userId={russian.person.user_id}", token=english.person.token
    )
    assert refused.status == 403, refused
    own = api.call(
        "GET", f"/notifications?userId={english.person.user_id}", token=english.person.token
    )
    assert ok(own)["notifications"][0]["userId"] == english.person.user_id
    for who in (russian, english):
        each_sent_once(api, inbox, who)


def test_bad_notification_ids_and_tokens_are_400(api: Rest) -> None:
    user = person(api)
    for method, path in (
        ("POST", "/notifications/not-a-uuid:markRead"),
        ("GET", "/notifications?pageToken=forged"),
        ("GET", "/notifications?userId=nobody"),
        ("GET", "/users/nobody/notification-preferences"),
    ):
        reply = api.call(method, path, {} if method == "POST" else None, token=user.token)
        assert reply.status == 400, (path, reply)


# Preferences


def test_preferences_default_and_only_valid_ones_are_saved_by_their_owner(
    api: Rest, root: Person
) -> None:
    user, other = resident(api).person, person(api)
    defaults = ok(api.call("GET", preferences_path(user), token=user.token))["preferences"]
    assert defaults["userId"] == user.user_id
    assert {c["category"]: c["channels"] for c in defaults["categories"]} == DEFAULT_CHANNELS
    assert not any(c["digest"] for c in defaults["categories"])
    assert defaults["digestTime"] == "08:00"
    assert defaults["timeZone"] == "Europe/Moscow"
    assert "quietHours" not in defaults
    # An ADMIN reads them; another user may not.
    assert ok(api.call("GET", preferences_path(user), token=root.token))["preferences"] == defaults
    refused = api.call("GET", preferences_path(user), token=other.token)
    assert refused.status == 403, refused

    safety = choice("SAFETY", "SMS")
    invalid: list[tuple[dict[str, Any], str]] = [
        ({"categories": [choice("SAFETY")]}, "SAFETY_CHANNEL_REQUIRED"),
        ({"categories": [choice("BILLING", "EMAIL")]}, "SAFETY_CHANNEL_REQUIRED"),
        ({"categories": [safety, choice("SAFETY", "PUSH")]}, "DUPLICATE_CATEGORY"),
        ({"categories": [choice("SAFETY", "SMS", "SMS")]}, "DUPLICATE_CHANNEL"),
        ({"categories": [choice("SAFETY", "SMS", digest=True)]}, "DIGEST_NOT_ALLOWED"),
        (
            {"categories": [safety], "quietHours": {"startTime": "25:00", "endTime": "07:00"}},
            "INVALID_TIME",
        ),
        (
            {"categories": [safety], "quietHours": {"startTime": "22:00", "endTime": "22:00"}},
            "INVALID_QUIET_HOURS",
        ),
        ({"categories": [safety], "quietHours": {"startTime": "22:00"}}, "INVALID_TIME"),
        ({"categories": [safety], "digestTime": "8:00"}, "INVALID_TIME"),
        ({"categories": [safety, choice("NOTIFICATION_CATEGORY_UNSPECIFIED")]}, ""),
        ({"categories": [choice("SAFETY", "FAX")]}, ""),
    ]
    for preferences, reason in invalid:
        reply = save_preferences(api, user, user, **preferences)
        assert reply.status == 400, (preferences, reply)
        if reason:
            assert reply.reason == reason, (preferences, reply)
    after = ok(api.call("GET", preferences_path(user), token=user.token))["preferences"]
    assert after == defaults

    wanted: dict[str, Any] = {
        "categories": [safety, choice("BILLING", "EMAIL", "PUSH", digest=True)],
        "quietHours": {"startTime": "23:00", "endTime": "07:30"},
        "digestTime": "19:45",
    }
    for caller in (other, root):
        refused = save_preferences(api, caller, user, **wanted)
        assert refused.status == 403, refused
        assert refused.reason == "NOT_OWNER"
    saved = ok(save_preferences(api, user, user, **wanted))["preferences"]
    read = ok(api.call("GET", preferences_path(user), token=root.token))["preferences"]
    assert read == saved
    assert read["categories"] == wanted["categories"]
    assert read["quietHours"] == wanted["quietHours"]
    assert read["digestTime"] == "19:45"
    assert abs(parse_time(read["updateTime"]) - datetime.now(UTC)) < timedelta(minutes=1)


# What people receive


async def test_a_category_left_out_sends_nothing_but_is_still_listed(
    api: Rest, root: Person, inbox: Inbox
) -> None:
    opted_out, default = resident(api), resident(api)
    ok(
        save_preferences(
            api, opted_out.person, opted_out.person, categories=[choice("SAFETY", "SMS")]
        )
    )
    since = time.time()
    issue_invoice(api, root, opted_out.person.user_id, 111.11)
    issue_invoice(api, root, default.person.user_id, 222.22)

    def mailed() -> dict[str, Any]:
        [message] = received_since(inbox, default, EMAIL, since)
        return message

    mail = await wait_for(mailed, 15, "the invoice e-mail to the user with defaults")
    assert "222" in text_of(mail), mail
    [silent] = await wait_for(
        lambda: of_category(api, opted_out.person, "BILLING"), 10, "the opted-out user's notice"
    )
    assert silent["deliveries"] == []
    assert "111" in silent["title"] + silent["body"], silent
    await asyncio.sleep(2)
    for channel in CHANNELS:
        assert received_since(inbox, opted_out, channel, since) == [], channel
    for who in (opted_out, default):
        each_sent_once(api, inbox, who)


async def test_transient_failures_are_retried_and_a_permanent_one_is_not(
    api: Rest, root: Person, inbox: Inbox
) -> None:
    user = resident(api)
    billing = choice("BILLING", "SMS", "PUSH")
    ok(
        save_preferences(
            api, user.person, user.person, categories=[choice("SAFETY", "SMS"), billing]
        )
    )
    inbox.fail_next(SMS, 2, "transient")
    inbox.fail_next(PUSH, 1, "permanent")
    since = time.time()
    issue_invoice(api, root, user.person.user_id, 333.33)

    # Attempts at t, t+1 s, t+3 s: the third goes through.
    [sms] = await wait_for(lambda: received_since(inbox, user, SMS, since), 30, "the SMS")
    assert "333" in sms["body"], sms

    def settled() -> dict[str, Any] | None:
        [notice] = of_category(api, user.person, "BILLING")
        return notice if delivery(notice, "SMS")["status"] == "SENT" else None

    notice = await wait_for(settled, 10, "the SMS delivery SENT")
    assert delivery(notice, "SMS")["attempts"] == 3
    assert "nextAttemptTime" not in delivery(notice, "SMS")
    pushed = delivery(notice, "PUSH")
    assert pushed["status"] == "FAILED", pushed
    assert pushed["attempts"] == 1, pushed
    assert pushed["failureReason"], pushed
    assert "nextAttemptTime" not in pushed
    # Not retried later either.
    await asyncio.sleep(3)
    [notice] = of_category(api, user.person, "BILLING")
    assert delivery(notice, "PUSH") == pushed
    assert received_since(inbox, user, PUSH, since) == []
    each_sent_once(api, inbox, user)


async def test_a_digest_gathers_invoices_into_one_email_at_the_digest_time(
    api: Rest, root: Person, inbox: Inbox
) -> None:
    user = resident(api)
    now = datetime.now(ZONE)
    # The next minute, unless it is too close to tell "at once" from "at the digest time".
    at = (now + timedelta(minutes=1 if now.second < 40 else 2)).replace(second=0, microsecond=0)
    ok(
        save_preferences(
            api,
            user.person,
            user.person,
            categories=[choice("SAFETY", "SMS"), choice("BILLING", "EMAIL", digest=True)],
            digestTime=wall(at),
        )
    )
    since = time.time()
    issue_invoice(api, root, user.person.user_id, 101.5)
    issue_invoice(api, root, user.person.user_id, 202.75)

    def both_waiting() -> list[dict[str, Any]] | None:
        listed = of_category(api, user.person, "BILLING")
        return listed if len(listed) == 2 else None

    invoices = await wait_for(both_waiting, 15, "two BILLING notifications")
    for notice in invoices:
        waiting = delivery(notice, "EMAIL")
        assert waiting["status"] == "PENDING", notice
        assert waiting["digest"] is True, notice
        assert parse_time(waiting["nextAttemptTime"]) == at.astimezone(UTC), (waiting, at)
    assert datetime.now(ZONE) < at - timedelta(seconds=5)
    assert received_since(inbox, user, EMAIL, since) == []

    def digest() -> dict[str, Any]:
        [message] = received_since(inbox, user, EMAIL, since)
        return message

    remaining = (at - datetime.now(ZONE)).total_seconds()
    mail = await wait_for(digest, min(remaining + 60, 90), "the digest e-mail")
    assert mail["receivedAt"] >= at.timestamp() - 1, mail
    assert text_of(mail).startswith(DIGEST_SUBJECT), mail
    assert "2 notifications" in mail["subject"], mail
    for notice in invoices:
        assert notice["title"] in mail["body"], (notice["title"], mail)
    await asyncio.sleep(2)
    assert len(received_since(inbox, user, EMAIL, since)) == 1
    for notice in of_category(api, user.person, "BILLING"):
        assert delivery(notice, "EMAIL")["status"] == "SENT", notice
    each_sent_once(api, inbox, user)


async def test_a_gas_alarm_ignores_preferences_and_quiet_hours_a_device_going_offline_does_not(
    api: Rest, stack: Stack, inbox: Inbox
) -> None:
    house = household(api)
    owner, maintainer, guest = house.residents
    now = datetime.now(ZONE)
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    quiet_end = end.replace(second=0, microsecond=0).astimezone(UTC)
    ok(
        save_preferences(
            api,
            owner.person,
            owner.person,
            categories=[choice("SAFETY", "SMS"), choice("DEVICE_STATUS", "PUSH", "EMAIL")],
            quietHours={"startTime": wall(start), "endTime": wall(end)},
        )
    )
    sensor = Hardware(api, house.home, "SENSOR")
    async with running(sensor.simulated(adapter_address(stack), telemetry_interval=0.05)) as sim:
        await sim.wait_connected(10)
        await asyncio.sleep(0.5)
        raised = time.time()
        sim.gas_alarm(True)

        def alarmed() -> bool:
            return all(received_since(inbox, owner, channel, raised) for channel in CHANNELS)

        await wait_for(alarmed, 15, "the owner's alarm by SMS, push and e-mail")
        for channel in CHANNELS:
            [message] = received_since(inbox, owner, channel, raised)
            assert "gas" in text_of(message).lower(), message
        [alarm] = of_category(api, owner.person, "SAFETY")
        assert alarm["priority"] == "CRITICAL"
        assert sorted(d["channel"] for d in alarm["deliveries"]) == ["EMAIL", "PUSH", "SMS"]
        stopped = time.time()
    # The sensor is gone: after a while its device is OFFLINE, news of LOW priority.

    def offline_mail() -> dict[str, Any]:
        [message] = received_since(inbox, owner, EMAIL, stopped)
        return message

    mail = await wait_for(offline_mail, 60, "the owner's OFFLINE e-mail")
    assert "offline" in text_of(mail).lower(), mail
    # Members without quiet hours are pushed at once: the owner's push waits.
    await wait_for(
        lambda: received_since(inbox, guest, PUSH, stopped), 15, "the guest's OFFLINE push"
    )
    await asyncio.sleep(1)
    assert received_since(inbox, owner, PUSH, stopped) == []
    [status] = of_category(api, owner.person, "DEVICE_STATUS")
    assert status["priority"] == "LOW"
    assert delivery(status, "EMAIL")["status"] == "SENT"
    pushed = delivery(status, "PUSH")
    assert pushed["status"] == "PENDING", pushed
    assert pushed["attempts"] == 0, pushed
    assert parse_time(pushed["nextAttemptTime"]) == quiet_end, (pushed, quiet_end)
    for who in (owner, maintainer, guest):
        each_sent_once(api, inbox, who)
    for channel in CHANNELS:
        assert received_since(inbox, house.stranger, channel, raised) == []


def test_no_email_of_this_module_went_out_twice(inbox: Inbox) -> None:
    """Across everything sent so far: no Message-ID twice (the SMS and push
    gateways keep an Idempotency-Key's first message only, so each_sent_once
    counts those against the deliveries instead)."""
    keys = Counter(m["messageId"] for m in inbox.messages(EMAIL))
    assert [key for key, count in keys.items() if count > 1] == []
