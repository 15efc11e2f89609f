"""Support through Envoy: tickets and their conversation over REST, who may
see and move what, the status machine, the first-response clock, bad input,
and the e-mail and push a user gets when support answers.

An SLA breach is not tested here: the shortest deadline (URGENT) is 15
minutes, and the services' integration tests cover the sweep with a clock."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.message_sandbox.inbox import Inbox, text_of
from services.message_sandbox.store import CHANNELS, EMAIL, PUSH
from tests.e2e.device_loop import within
from tests.e2e.homes import Home, Person, device_id_in, ok, pages, person
from tests.e2e.people import distinct, received_since, resident
from tests.e2e.rest import Reply, Rest
from tests.polling import eventually

# What Envoy makes of FAILED_PRECONDITION (a move the status machine refuses,
# a comment on a CLOSED ticket): the standard gRPC → HTTP mapping.
REFUSED_MOVE = 400


# A subject and description that are fine.
TEXT = {"subject": "Чужое", "description": "Подробности"}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def open_ticket(api: Rest, who: Person, subject: str = "Батарея холодная", **extra: Any) -> str:
    body = {"subject": subject, "description": "Радиатор холодный.\nЖдём мастера!", **extra}
    reply = ok(api.call("POST", "/tickets", body, token=who.token))
    assert reply["status"] == "OPEN", reply
    return str(reply["ticketId"])


def ticket(api: Rest, who: Person, ticket_id: str) -> dict[str, Any]:
    return dict(ok(api.call("GET", f"/tickets/{ticket_id}", token=who.token))["ticket"])


def move(api: Rest, who: Person, ticket_id: str, **fields: str) -> Reply:
    return api.call("PATCH", f"/tickets/{ticket_id}", fields, token=who.token)


def comment(api: Rest, who: Person, ticket_id: str, message: str, **extra: Any) -> Reply:
    body = {"message": message, **extra}
    return api.call("POST", f"/tickets/{ticket_id}/comments", body, token=who.token)


def conversation(api: Rest, who: Person, ticket_id: str) -> list[dict[str, Any]]:
    body = ok(api.call("GET", f"/tickets/{ticket_id}/comments?pageSize=100", token=who.token))
    return list(body["comments"])


def status_of(api: Rest, who: Person, ticket_id: str) -> str:
    return str(ticket(api, who, ticket_id)["status"])


# Opening


def test_a_user_opens_a_normal_ticket_due_in_eight_hours(api: Rest) -> None:
    user = person(api)
    before = datetime.now(UTC)
    reply = ok(
        api.call(
            "POST",
            "/tickets",
            {"subject": "Нет тепла", "description": "Дома холодно"},
            token=user.token,
        )
    )
    after = datetime.now(UTC)
    assert set(reply) == {"ticketId", "status"}, reply
    assert reply["status"] == "OPEN"

    opened = ticket(api, user, reply["ticketId"])
    assert opened["userId"] == user.user_id
    assert opened["subject"] == "Нет тепла"
    assert opened["priority"] == "NORMAL"
    assert opened["status"] == "OPEN"
    assert opened["spaceId"] == opened["deviceId"] == ""
    assert opened["slaBreached"] is False
    assert "firstResponseTime" not in opened, opened
    created = parse_time(opened["createTime"])
    assert before - timedelta(seconds=5) <= created <= after + timedelta(seconds=5)
    due = parse_time(opened["firstResponseDueTime"])
    assert due - created == timedelta(hours=8), opened


def test_an_admin_opens_a_ticket_for_a_user_who_may_not_for_another(
    api: Rest, root: Person
) -> None:
    user, other = person(api), person(api)
    body = {**TEXT, "userId": user.user_id, "subject": "Звонок в поддержку", "priority": "HIGH"}
    ticket_id = ok(api.call("POST", "/tickets", body, token=root.token))["ticketId"]
    on_behalf = ticket(api, user, ticket_id)
    assert on_behalf["userId"] == user.user_id
    assert on_behalf["priority"] == "HIGH"
    due = parse_time(on_behalf["firstResponseDueTime"]) - parse_time(on_behalf["createTime"])
    assert due == timedelta(hours=1)

    body = {**TEXT, "userId": other.user_id, "subject": "От чужого имени"}
    refused = api.call("POST", "/tickets", body, token=user.token)
    assert refused.status == 403, refused
    assert refused.reason == "NOT_OWNER"
    mine = ok(api.call("GET", "/tickets", token=other.token))["tickets"]
    assert mine == []


async def test_a_ticket_names_a_space_or_device_of_the_users_home_only(
    api: Rest, root: Person, home: Home
) -> None:
    device_id = device_id_in(api, home.owner.token, home.room_id, "Котёл")
    body = {**TEXT, "spaceId": home.room_id, "deviceId": device_id}

    def opened() -> str:
        # Support learns of homes, members and devices from their events.
        reply = api.call("POST", "/tickets", body, token=home.guest.token)
        assert reply.status in (200, 404), reply
        return str(reply.body["ticketId"]) if reply.status == 200 else ""

    linked = await eventually(opened, within=10, interval=0.2, what="a member's linked ticket")
    seen = ticket(api, home.guest, linked)
    assert (seen["spaceId"], seen["deviceId"]) == (home.room_id, device_id)

    for body, reason in (
        ({"spaceId": home.room_id}, "SPACE_NOT_FOUND"),
        ({"spaceId": home.id}, "SPACE_NOT_FOUND"),
        ({"deviceId": device_id}, "DEVICE_NOT_FOUND"),
    ):
        refused = api.call("POST", "/tickets", {**TEXT, **body}, token=home.stranger.token)
        assert refused.status == 404, (body, refused)
        assert refused.reason == reason
        # Not even an ADMIN can tie a stranger's ticket to someone else's home.
        for_stranger = {**TEXT, "userId": home.stranger.user_id, **body}
        refused = api.call("POST", "/tickets", for_stranger, token=root.token)
        assert refused.status == 404, (body, refused)
    assert ok(api.call("GET", "/tickets", token=home.stranger.token))["tickets"] == []


# The status machine and who may move it


def test_the_status_machine_through_rest(api: Rest, root: Person) -> None:
    user = person(api)
    ticket_id = open_ticket(api, user)

    refused = move(api, user, ticket_id, status="IN_PROGRESS")
    assert refused.status == 403, refused
    assert refused.reason == "STATUS_CHANGE_NOT_ALLOWED"
    refused = move(api, user, ticket_id, priority="URGENT")
    assert refused.status == 403, refused
    assert ticket(api, user, ticket_id)["priority"] == "NORMAL"

    assert ok(move(api, root, ticket_id, status="IN_PROGRESS"))["ticket"]["status"] == "IN_PROGRESS"
    resolved = ok(move(api, root, ticket_id, status="RESOLVED"))["ticket"]
    assert resolved["status"] == "RESOLVED"

    # The author's comment on a RESOLVED ticket reopens it.
    ok(comment(api, user, ticket_id, "Всё ещё холодно"))
    assert status_of(api, user, ticket_id) == "OPEN"
    ok(move(api, root, ticket_id, status="RESOLVED"))
    # An ADMIN's comment does not.
    ok(comment(api, root, ticket_id, "Проверьте ещё раз, пожалуйста"))
    assert status_of(api, user, ticket_id) == "RESOLVED"

    closed = ok(move(api, user, ticket_id, status="CLOSED"))["ticket"]
    assert closed["status"] == "CLOSED"
    for who, fields in (
        (root, {"status": "OPEN"}),
        (root, {"status": "IN_PROGRESS"}),
        (root, {"status": "RESOLVED"}),
        (user, {"status": "OPEN"}),
    ):
        refused = move(api, who, ticket_id, **fields)
        assert refused.status == REFUSED_MOVE, (fields, refused)
        assert refused.reason == "STATUS_TRANSITION_NOT_ALLOWED", refused
    refused = move(api, root, ticket_id, priority="HIGH")
    assert refused.status == REFUSED_MOVE, refused
    assert refused.reason == "TICKET_CLOSED"
    for who in (user, root):
        refused = comment(api, who, ticket_id, "Ещё одно")
        assert refused.status == REFUSED_MOVE, refused
        assert refused.reason == "TICKET_CLOSED"
    final = ticket(api, root, ticket_id)
    assert (final["status"], final["priority"]) == ("CLOSED", "NORMAL")
    assert len(conversation(api, root, ticket_id)) == 2


def test_the_author_may_close_an_open_ticket_but_not_resolve_it(api: Rest) -> None:
    user = person(api)
    ticket_id = open_ticket(api, user)
    refused = move(api, user, ticket_id, status="RESOLVED")
    assert refused.status == 403, refused
    assert status_of(api, user, ticket_id) == "OPEN"
    assert ok(move(api, user, ticket_id, status="CLOSED"))["ticket"]["status"] == "CLOSED"


def test_another_user_finds_no_ticket_anywhere(api: Rest, root: Person) -> None:
    author, other = person(api), person(api)
    ticket_id = open_ticket(api, author)
    ok(comment(api, author, ticket_id, "Подробности"))
    for reply in (
        api.call("GET", f"/tickets/{ticket_id}", token=other.token),
        move(api, other, ticket_id, status="CLOSED"),
        comment(api, other, ticket_id, "Я тоже"),
        api.call("GET", f"/tickets/{ticket_id}/comments", token=other.token),
    ):
        assert reply.status == 404, reply
        assert reply.reason == "TICKET_NOT_FOUND"
    listed = api.call("GET", f"/tickets?userId={author.user_id}", token=other.token)
    assert listed.status == 403, listed
    assert status_of(api, author, ticket_id) == "OPEN"
    assert len(conversation(api, root, ticket_id)) == 1


# The conversation


def test_internal_notes_are_for_support_staff_only(api: Rest, root: Person) -> None:
    user = person(api)
    ticket_id = open_ticket(api, user)
    note = ok(comment(api, root, ticket_id, "Похоже на котёл", internal=True))["comment"]
    assert note["internal"] is True
    assert note["authorId"] == root.user_id
    answer = ok(comment(api, root, ticket_id, "Мы проверим котёл"))["comment"]
    assert answer["internal"] is False

    refused = comment(api, user, ticket_id, "Секрет", internal=True)
    assert refused.status == 403, refused
    assert refused.reason == "INTERNAL_NOTE_NOT_ALLOWED"

    seen_by_user = conversation(api, user, ticket_id)
    assert [c["commentId"] for c in seen_by_user] == [answer["commentId"]]
    seen_by_staff = conversation(api, root, ticket_id)
    assert [c["commentId"] for c in seen_by_staff] == [note["commentId"], answer["commentId"]]


def test_a_comment_is_the_callers_whatever_the_body_says(api: Rest, root: Person) -> None:
    user = person(api)
    ticket_id = open_ticket(api, user)
    # Envoy's transcoder drops a body field CreateCommentRequest does not have.
    forged = comment(api, user, ticket_id, "От имени поддержки", authorId=root.user_id)
    mine = ok(forged)["comment"]
    assert mine["authorId"] == user.user_id
    [stored] = conversation(api, root, ticket_id)
    assert stored["authorId"] == user.user_id
    assert stored["commentId"] == mine["commentId"]
    assert "firstResponseTime" not in ticket(api, user, ticket_id)


def test_tickets_are_listed_newest_first_page_by_page_and_filtered(api: Rest, root: Person) -> None:
    user = person(api)
    low = open_ticket(api, user, "Первый", priority="LOW")
    high = open_ticket(api, user, "Второй", priority="HIGH")
    normal = open_ticket(api, user, "Третий")
    ok(move(api, root, high, status="IN_PROGRESS"))

    listed = pages(api, "/tickets", user.token, "tickets", page_size=1)
    assert [t["ticketId"] for t in listed] == [normal, high, low]
    first = ok(api.call("GET", "/tickets?pageSize=1", token=user.token))
    assert len(first["tickets"]) == 1
    assert first["nextPageToken"]

    def ids(query: str, who: Person = user) -> list[str]:
        body = ok(api.call("GET", f"/tickets?{query}", token=who.token))
        return [t["ticketId"] for t in body["tickets"]]

    assert ids("status=IN_PROGRESS") == [high]
    assert ids("status=OPEN") == [normal, low]
    assert ids("priority=LOW") == [low]
    assert ids("status=OPEN&priority=HIGH") == []
    assert ids(f"userId={user.user_id}") == [normal, high, low]
    assert ids(f"userId={user.user_id}&priority=HIGH", root) == [high]
    by_admin = pages(api, f"/tickets?userId={user.user_id}", root.token, "tickets", 2)
    assert [t["ticketId"] for t in by_admin] == [normal, high, low]
    # The ADMIN's unfiltered queue holds them too (with everyone else's).
    queue = {t["ticketId"] for t in pages(api, "/tickets?status=OPEN", root.token, "tickets", 100)}
    assert {low, normal} <= queue
    assert high not in queue

    # Comments page oldest first.
    for text in ("раз", "два", "три"):
        ok(comment(api, user, low, text))
    said = pages(api, f"/tickets/{low}/comments", user.token, "comments", page_size=1)
    assert [c["message"] for c in said] == ["раз", "два", "три"]


# The first-response clock


def test_only_supports_first_public_answer_sets_the_first_response_time(
    api: Rest, root: Person
) -> None:
    user = person(api)
    ticket_id = open_ticket(api, user)
    ok(comment(api, user, ticket_id, "Добавлю: и в ванной тоже"))
    ok(comment(api, root, ticket_id, "Проверить счётчик", internal=True))
    ok(move(api, root, ticket_id, status="IN_PROGRESS"))
    assert "firstResponseTime" not in ticket(api, user, ticket_id)

    before = datetime.now(UTC)
    answer = ok(comment(api, root, ticket_id, "Мастер придёт завтра"))["comment"]
    answered = ticket(api, user, ticket_id)
    first = parse_time(answered["firstResponseTime"])
    assert first == parse_time(answer["createTime"])
    assert before - timedelta(seconds=5) <= first <= datetime.now(UTC) + timedelta(seconds=5)
    assert answered["slaBreached"] is False

    ok(comment(api, root, ticket_id, "И ещё одно"))
    assert parse_time(ticket(api, user, ticket_id)["firstResponseTime"]) == first


def test_an_admins_own_ticket_is_not_answered_by_their_comment(api: Rest, root: Person) -> None:
    ticket_id = open_ticket(api, root, "Проверка от администратора")
    ok(comment(api, root, ticket_id, "Заметка для себя"))
    assert "firstResponseTime" not in ticket(api, root, ticket_id)


# Bad input

MARK = "ZQXJ-ECHO-7731"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"subject": MARK + "x" * 6000}, "FIELD_TOO_LONG"),
        ({"subject": ""}, "FIELD_REQUIRED"),
        ({"subject": "   "}, "FIELD_REQUIRED"),
        ({"subject": f"{MARK}\u0000"}, "INVALID_CHARACTERS"),
        ({"subject": "Норм", "description": f"{MARK}\u0000финиш"}, "INVALID_CHARACTERS"),
        ({"subject": "Норм", "description": MARK + "й" * 10_001}, "FIELD_TOO_LONG"),
        ({"description": ""}, "FIELD_REQUIRED"),
        ({"subject": "Норм", "priority": f"SUPER_{MARK}"}, ""),
        ({"subject": "Норм", "priority": 99}, "INVALID_PRIORITY"),
        ({"subject": "Норм", "userId": f"not-a-uuid-{MARK}"}, "INVALID_ID"),
        ({"subject": "Норм", "spaceId": f"{MARK}"}, "INVALID_ID"),
        ({"subject": "Норм", "deviceId": f"{MARK}-1"}, "INVALID_ID"),
    ],
    ids=[
        "6KB subject",
        "empty subject",
        "blank subject",
        "NUL in subject",
        "NUL in description",
        "long description",
        "empty description",
        "unknown priority name",
        "unknown priority number",
        "bad user id",
        "bad space id",
        "bad device id",
    ],
)
def test_a_bad_ticket_is_refused_without_echo(
    api: Rest, root: Person, body: dict[str, Any], reason: str
) -> None:
    user = person(api)
    reply = api.call("POST", "/tickets", {**TEXT, **body}, token=user.token)
    assert reply.status == 400, reply
    assert MARK not in str(reply.body), reply
    if reason:
        assert reply.reason == reason, reply
    assert ok(api.call("GET", "/tickets", token=user.token))["tickets"] == []


def test_bad_ids_tokens_comments_and_moves_are_400_without_echo(api: Rest, root: Person) -> None:
    user = person(api)
    ticket_id = open_ticket(api, user)
    first_page = ok(api.call("GET", "/tickets?pageSize=1", token=user.token))
    assert first_page["nextPageToken"] == ""
    open_ticket(api, user, "Второе")
    token = ok(api.call("GET", "/tickets?pageSize=1", token=user.token))["nextPageToken"]
    assert token
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    calls = [
        ("GET", f"/tickets/{MARK}", None),
        ("GET", f"/tickets/{MARK}/comments", None),
        ("PATCH", f"/tickets/{MARK}", {"status": "CLOSED"}),
        ("POST", f"/tickets/{MARK}/comments", {"message": "hi"}),
        ("GET", f"/tickets?pageToken={MARK}", None),
        ("GET", f"/tickets?pageToken={forged}", None),
        ("GET", f"/tickets?userId={MARK}", None),
        ("GET", f"/tickets?status=NOPE_{MARK}", None),
        ("GET", f"/tickets/{ticket_id}/comments?pageToken={MARK}", None),
        # A listing's token is no good for another listing.
        ("GET", f"/tickets?status=OPEN&pageToken={token}", None),
        ("GET", f"/tickets/{ticket_id}/comments?pageToken={token}", None),
        ("PATCH", f"/tickets/{ticket_id}", {"status": "TICKET_STATUS_UNSPECIFIED"}),
        ("PATCH", f"/tickets/{ticket_id}", {"status": f"DONE_{MARK}"}),
        ("PATCH", f"/tickets/{ticket_id}", {"status": 42}),
        ("POST", f"/tickets/{ticket_id}/comments", {"message": ""}),
        ("POST", f"/tickets/{ticket_id}/comments", {"message": f"{MARK}\u0000"}),
        ("POST", f"/tickets/{ticket_id}/comments", {"message": MARK + "я" * 10_001}),
    ]
    for method, path, body in calls:
        reply = api.call(method, path, body, token=user.token)
        assert reply.status == 400, (method, path, reply)
        assert MARK not in str(reply.body), (method, path, reply)
    assert status_of(api, user, ticket_id) == "OPEN"
    assert conversation(api, user, ticket_id) == []


# Support's answers reach the user


async def test_supports_answer_reaches_the_user_by_email_and_push_their_own_comment_does_not(
    api: Rest, root: Person, inbox: Inbox
) -> None:
    user = resident(api)
    subject = "Термостат сломался"
    ticket_id = open_ticket(api, user.person, subject)
    since = time.time()
    ok(comment(api, user.person, ticket_id, "Фото прилагаю"))
    ok(comment(api, root, ticket_id, "Похоже на батарейки", internal=True))

    answered = time.time()
    ok(comment(api, root, ticket_id, "Замените, пожалуйста, батарейки"))

    def told() -> bool:
        return all(received_since(inbox, user, channel, answered) for channel in (EMAIL, PUSH))

    await within(15, told, "the user told by e-mail and push")
    for channel in (EMAIL, PUSH):
        [message] = received_since(inbox, user, channel, since)
        assert "Support answered" in text_of(message), message
        assert subject in text_of(message), message
        # Nothing for the user's own comment or the note, which came first.
        assert message["receivedAt"] >= answered
    assert received_since(inbox, user, "sms", since) == []

    # The user answers again: still nothing more.
    ok(comment(api, user.person, ticket_id, "Спасибо, помогло"))
    await asyncio.sleep(3)
    for channel in CHANNELS:
        assert distinct(received_since(inbox, user, channel, since)) == (
            0 if channel == "sms" else 1
        ), channel
    support = [
        n
        for n in ok(api.call("GET", "/notifications", token=user.person.token))["notifications"]
        if n["category"] == "SUPPORT"
    ]
    assert len(support) == 1, support
