"""Space Management through Envoy: homes, rooms, members and who may change them."""

import time
import uuid

import pytest

from tests.e2e.homes import (
    Home,
    Person,
    add_member,
    create_home,
    create_room,
    device_id_in,
    from_now,
    home_with_members,
    ok,
    pages,
    person,
)
from tests.e2e.rest import Rest
from tests.polling import wait_until


def member_ids(api: Rest, home_id: str, token: str) -> set[str]:
    members = pages(api, f"/spaces/{home_id}/users", token, "spaceUsers", page_size=100)
    return {member["userId"] for member in members}


# CreateSpace


def test_create_answers_as_the_spec_says_and_the_owner_is_the_first_member(api: Rest) -> None:
    owner = person(api)
    reply = api.call("POST", "/spaces", {"name": "Квартира", "ownerId": owner.user_id}, owner.token)
    assert reply.status == 200, reply
    assert set(reply.body) == {"spaceId"}
    space_id = reply.body["spaceId"]
    assert uuid.UUID(space_id)
    space = ok(api.call("GET", f"/spaces/{space_id}", token=owner.token))["space"]
    assert space["spaceId"] == space_id
    assert space["name"] == "Квартира"
    assert space["ownerId"] == owner.user_id
    assert space["parentSpaceId"] == ""
    assert space["createTime"]
    assert space["updateTime"]
    members = ok(api.call("GET", f"/spaces/{space_id}/users", token=owner.token))["spaceUsers"]
    assert [(m["userId"], m["role"], m["spaceId"]) for m in members] == [
        (owner.user_id, "OWNER", space_id)
    ]
    assert "expireTime" not in members[0]


def test_an_empty_owner_means_the_caller(api: Rest) -> None:
    owner = person(api)
    space_id = create_home(api, owner)
    space = ok(api.call("GET", f"/spaces/{space_id}", token=owner.token))["space"]
    assert space["ownerId"] == owner.user_id


def test_a_user_creates_only_spaces_it_owns(api: Rest) -> None:
    caller, other = person(api), person(api)
    body = {"name": "Not mine", "ownerId": other.user_id}
    reply = api.call("POST", "/spaces", body, token=caller.token)
    assert reply.status == 403
    assert reply.reason == "NOT_OWNER"
    assert api.call("POST", "/spaces", {"name": "Anyone's"}).status == 401


def test_an_admin_creates_spaces_for_active_users_only(api: Rest, root: Person) -> None:
    other = person(api)
    created = api.call("POST", "/spaces", {"name": "Дача", "ownerId": other.user_id}, root.token)
    space_id = ok(created)["spaceId"]
    space = ok(api.call("GET", f"/spaces/{space_id}", token=other.token))["space"]
    assert space["ownerId"] == other.user_id
    member = ok(api.call("GET", f"/spaces/{space_id}/users/{other.user_id}", token=other.token))
    assert member["spaceUser"]["role"] == "OWNER"

    gone = person(api)
    assert api.call("DELETE", f"/users/{gone.user_id}", token=gone.token).status == 200
    unknown = api.call("POST", "/spaces", {"name": "x", "ownerId": str(uuid.uuid4())}, root.token)
    inactive = api.call("POST", "/spaces", {"name": "x", "ownerId": gone.user_id}, root.token)
    assert unknown.status == inactive.status == 400
    assert unknown.reason == inactive.reason == "USER_NOT_AVAILABLE"
    assert unknown.body["message"] == inactive.body["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 101},
        {"name": "tab\there"},
        {"name": "bell\u0007"},
        {"name": "ok", "ownerId": "not-a-uuid"},
        {"name": "ok", "parentSpaceId": "not-a-uuid"},
    ],
    ids=["empty", "101 chars", "tab", "bell", "bad owner", "bad parent"],
)
def test_bad_creations_are_400(api: Rest, home: Home, body: dict[str, str]) -> None:
    reply = api.call("POST", "/spaces", body, token=home.owner.token)
    assert reply.status == 400, reply
    assert reply.body["message"]


def test_a_name_of_100_characters_is_fine(api: Rest) -> None:
    reply = api.call("POST", "/spaces", {"name": "й" * 100}, token=person(api).token)
    assert reply.status == 200, reply


# Homes and rooms


def test_a_home_with_two_rooms(api: Rest) -> None:
    owner = person(api)
    home_id = create_home(api, owner, "Квартира")
    kitchen = create_room(api, owner.token, home_id, "Кухня")
    bedroom = create_room(api, owner.token, home_id, "Спальня")
    room = ok(api.call("GET", f"/spaces/{kitchen}", token=owner.token))["space"]
    assert room["parentSpaceId"] == home_id
    assert room["ownerId"] == owner.user_id  # the home's
    assert room["name"] == "Кухня"
    rooms = ok(api.call("GET", f"/spaces?parentSpaceId={home_id}", token=owner.token))["spaces"]
    assert {space["spaceId"] for space in rooms} == {kitchen, bedroom}
    mine = pages(api, "/spaces", owner.token, "spaces")
    assert sorted(space["spaceId"] for space in mine) == sorted([home_id, kitchen, bedroom])
    # A room's members are its home's: GetSpaceUser through a room answers with the home.
    member = ok(api.call("GET", f"/spaces/{kitchen}/users/{owner.user_id}", token=owner.token))
    assert member["spaceUser"]["spaceId"] == home_id
    assert member["spaceUser"]["role"] == "OWNER"


def test_rooms_do_not_nest(api: Rest, home: Home) -> None:
    body = {"name": "Шкаф", "parentSpaceId": home.room_id}
    reply = api.call("POST", "/spaces", body, token=home.owner.token)
    assert reply.status == 400
    assert reply.reason == "ROOMS_CANNOT_NEST"


def test_only_the_owner_or_an_admin_adds_rooms(api: Rest, root: Person) -> None:
    home = home_with_members(api)
    body = {"name": "Балкон", "parentSpaceId": home.id}
    for member in (home.maintainer, home.guest):
        refused = api.call("POST", "/spaces", body, token=member.token)
        assert refused.status == 403, member
        assert refused.reason == "SPACE_ROLE_INSUFFICIENT"
    hidden = api.call("POST", "/spaces", body, token=home.stranger.token)
    unknown = api.call(
        "POST", "/spaces", {**body, "parentSpaceId": str(uuid.uuid4())}, home.owner.token
    )
    assert hidden.status == unknown.status == 404
    assert hidden.reason == unknown.reason == "SPACE_NOT_FOUND"
    assert ok(api.call("POST", "/spaces", body, token=root.token))["spaceId"]


# GetSpace and ListSpaces


def test_members_and_admins_read_a_space_strangers_get_404(
    api: Rest, home: Home, root: Person
) -> None:
    for caller in (*home.members, root):
        for space_id in (home.id, home.room_id):
            assert api.call("GET", f"/spaces/{space_id}", token=caller.token).status == 200
    nowhere = str(uuid.uuid4())
    hidden = api.call("GET", f"/spaces/{home.id}", token=home.stranger.token)
    unknown = api.call("GET", f"/spaces/{nowhere}", token=home.stranger.token)
    assert hidden.status == unknown.status == 404
    assert hidden.reason == unknown.reason == "SPACE_NOT_FOUND"
    assert hidden.body["message"].replace(home.id, "ID") == unknown.body["message"].replace(
        nowhere, "ID"
    ), "a stranger learns nothing"
    assert api.call("GET", f"/spaces/{home.id}").status == 401
    assert api.call("GET", "/spaces/not-a-uuid", token=home.owner.token).status == 400


def test_list_is_what_the_caller_belongs_to_page_by_page(api: Rest, home: Home) -> None:
    for member in home.members:
        listed = {space["spaceId"] for space in pages(api, "/spaces", member.token, "spaces")}
        assert listed == {home.id, home.room_id}, member
    assert ok(api.call("GET", "/spaces", token=home.stranger.token))["spaces"] == []
    assert api.call("GET", "/spaces").status == 401
    assert api.call("GET", "/spaces?pageSize=-1", token=home.owner.token).status == 400
    forged = api.call("GET", "/spaces?pageToken=bm9wZQ", token=home.owner.token)
    assert forged.status == 400
    assert forged.reason == "INVALID_PAGE_TOKEN"


def test_rooms_of_a_home_only_for_those_who_see_it(api: Rest, home: Home) -> None:
    path = f"/spaces?parentSpaceId={home.id}"
    listed = ok(api.call("GET", path, token=home.guest.token))["spaces"]
    assert [space["spaceId"] for space in listed] == [home.room_id]
    hidden = api.call("GET", path, token=home.stranger.token)
    assert hidden.status == 404


def test_filters_by_user_and_owner_are_for_admins(api: Rest, home: Home, root: Person) -> None:
    other = api.call("GET", f"/spaces?userId={home.owner.user_id}", token=home.guest.token)
    assert other.status == 403
    own = api.call("GET", f"/spaces?userId={home.guest.user_id}", token=home.guest.token)
    assert {space["spaceId"] for space in ok(own)["spaces"]} == {home.id, home.room_id}
    by_owner = api.call("GET", f"/spaces?ownerId={home.owner.user_id}", token=home.owner.token)
    assert by_owner.status == 403
    assert by_owner.reason == "ADMIN_REQUIRED"

    owned = pages(api, f"/spaces?ownerId={home.owner.user_id}", root.token, "spaces", 100)
    assert home.id in {space["spaceId"] for space in owned}
    assert not any(space["ownerId"] not in ("", home.owner.user_id) for space in owned)
    not_owned = pages(api, f"/spaces?ownerId={home.guest.user_id}", root.token, "spaces", 100)
    assert home.id not in {space["spaceId"] for space in not_owned}
    joined = pages(api, f"/spaces?userId={home.guest.user_id}", root.token, "spaces", 100)
    assert {space["spaceId"] for space in joined} == {home.id, home.room_id}
    everything = ok(api.call("GET", "/spaces?pageSize=100", token=root.token))["spaces"]
    assert len(everything) >= 2


# Members


def test_adding_members_as_the_owner(api: Rest) -> None:
    owner, newcomer = person(api), person(api)
    home_id = create_home(api, owner)
    body = {"userId": newcomer.user_id, "role": "MAINTAINER"}
    reply = api.call("POST", f"/spaces/{home_id}/users", body, token=owner.token)
    member = ok(reply)["spaceUser"]
    assert member["spaceId"] == home_id
    assert member["userId"] == newcomer.user_id
    assert member["role"] == "MAINTAINER"
    assert member["createTime"]
    assert ok(api.call("GET", f"/spaces/{home_id}", token=newcomer.token))["space"]["name"]
    again = api.call(
        "POST", f"/spaces/{home_id}/users", {**body, "role": "GUEST"}, token=owner.token
    )
    assert again.status == 409
    assert again.reason == "ALREADY_MEMBER"
    assert member_ids(api, home_id, newcomer.token) == {owner.user_id, newcomer.user_id}


def test_only_owners_and_admins_add_members(api: Rest, home: Home, root: Person) -> None:
    for member, status in ((home.maintainer, 403), (home.guest, 403), (home.stranger, 404)):
        body = {"userId": person(api).user_id, "role": "GUEST"}
        refused = api.call("POST", f"/spaces/{home.id}/users", body, token=member.token)
        assert refused.status == status, member
    body = {"userId": person(api).user_id, "role": "OWNER"}
    assert ok(api.call("POST", f"/spaces/{home.id}/users", body, token=root.token))
    assert api.call("POST", f"/spaces/{home.id}/users", body).status == 401


def test_unknown_and_deactivated_users_get_one_answer(api: Rest, home: Home) -> None:
    gone = person(api)
    assert api.call("DELETE", f"/users/{gone.user_id}", token=gone.token).status == 200
    path = f"/spaces/{home.id}/users"
    unknown = api.call(
        "POST", path, {"userId": str(uuid.uuid4()), "role": "GUEST"}, home.owner.token
    )
    inactive = api.call("POST", path, {"userId": gone.user_id, "role": "GUEST"}, home.owner.token)
    assert unknown.status == inactive.status == 400
    assert unknown.reason == inactive.reason == "USER_NOT_AVAILABLE"
    assert unknown.body["message"] == inactive.body["message"]
    # A stranger cannot use the home it found to probe accounts: the home is not there.
    probe_unknown = api.call(
        "POST", path, {"userId": str(uuid.uuid4()), "role": "GUEST"}, home.stranger.token
    )
    probe_real = api.call(
        "POST", path, {"userId": person(api).user_id, "role": "GUEST"}, home.stranger.token
    )
    assert probe_unknown.status == probe_real.status == 404
    assert probe_unknown.body == probe_real.body


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"role": "MAINTAINER", "expireTime": "2999-01-01T00:00:00Z"}, "EXPIRY_ONLY_FOR_GUESTS"),
        ({"role": "GUEST", "expireTime": "2001-01-01T00:00:00Z"}, "EXPIRY_IN_PAST"),
        ({"role": "SPACE_USER_ROLE_UNSPECIFIED"}, "INVALID_ROLE"),
        ({"role": 9}, "INVALID_ROLE"),
        ({}, "INVALID_ROLE"),
    ],
    ids=["expiry for a maintainer", "expiry in the past", "unspecified role", "role 9", "no role"],
)
def test_bad_memberships_are_400_with_a_reason(
    api: Rest, home: Home, extra: dict[str, object], reason: str
) -> None:
    body = {"userId": person(api).user_id, **extra}
    reply = api.call("POST", f"/spaces/{home.id}/users", body, token=home.owner.token)
    assert reply.status == 400, reply
    assert reply.reason == reason


def test_an_expiry_in_the_year_9998_is_a_long_stay(api: Rest, home: Home) -> None:
    guest = person(api)
    path = f"/spaces/{home.id}/users"
    body = {"userId": guest.user_id, "role": "GUEST", "expireTime": "9998-12-31T23:59:59.999999Z"}
    added = ok(api.call("POST", path, body, token=home.owner.token))["spaceUser"]
    assert added["expireTime"].startswith("9998-12-31T23:59:59")
    assert api.call("GET", f"/spaces/{home.id}", token=guest.token).status == 200
    member = f"/spaces/{home.id}/users/{guest.user_id}"
    assert api.call("DELETE", member, token=guest.token).status == 200


@pytest.mark.parametrize(
    "when",
    ["9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999999Z", "9999-01-01T00:00:00Z"],
)
def test_the_end_of_time_is_no_expiry(api: Rest, home: Home, when: str) -> None:
    # asyncpg stores the last microsecond of 9999 as 'infinity', which reads
    # back as no comparable instant: it must never get in.
    body = {"userId": person(api).user_id, "role": "GUEST", "expireTime": when}
    reply = api.call("POST", f"/spaces/{home.id}/users", body, token=home.owner.token)
    assert reply.status == 400, reply
    assert reply.reason == "INVALID_TIMESTAMP"


def test_members_belong_to_the_home_not_its_rooms(api: Rest, home: Home) -> None:
    body = {"userId": person(api).user_id, "role": "GUEST"}
    reply = api.call("POST", f"/spaces/{home.room_id}/users", body, token=home.owner.token)
    assert reply.status == 400
    assert reply.reason == "MEMBERS_BELONG_TO_HOME"


def test_reading_members(api: Rest, home: Home, root: Person) -> None:
    for caller in (*home.members, root):
        listed = member_ids(api, home.id, caller.token)
        assert {m.user_id for m in home.members} <= listed, caller
        one = api.call("GET", f"/spaces/{home.id}/users/{home.guest.user_id}", token=caller.token)
        assert ok(one)["spaceUser"]["role"] == "GUEST"
    roles = {
        m["userId"]: m["role"]
        for m in pages(api, f"/spaces/{home.id}/users", home.guest.token, "spaceUsers")
    }
    assert roles[home.owner.user_id] == "OWNER"
    assert roles[home.maintainer.user_id] == "MAINTAINER"
    not_member = api.call(
        "GET", f"/spaces/{home.id}/users/{home.stranger.user_id}", token=home.owner.token
    )
    assert not_member.status == 404
    assert not_member.reason == "MEMBER_NOT_FOUND"
    for path in (f"/spaces/{home.id}/users", f"/spaces/{home.id}/users/{home.owner.user_id}"):
        assert api.call("GET", path, token=home.stranger.token).status == 404
        assert api.call("GET", path).status == 401


def test_changing_roles(api: Rest, root: Person) -> None:
    owner, second, guest = person(api), person(api), person(api)
    home_id = create_home(api, owner)
    add_member(api, owner.token, home_id, guest.user_id, "GUEST", from_now(3600))
    path = f"/spaces/{home_id}/users/{guest.user_id}"
    promoted = ok(api.call("PATCH", path, {"role": "MAINTAINER"}, token=owner.token))
    assert promoted["spaceUser"]["role"] == "MAINTAINER"
    assert "expireTime" not in promoted["spaceUser"]
    refused = api.call("PATCH", path, {"role": "GUEST"}, token=guest.token)
    assert refused.status == 403
    assert api.call("PATCH", path, {"role": "GUEST"}).status == 401
    expiry = api.call(
        "PATCH", path, {"role": "MAINTAINER", "expireTime": from_now(60)}, token=owner.token
    )
    assert expiry.status == 400
    assert expiry.reason == "EXPIRY_ONLY_FOR_GUESTS"
    past = api.call("PATCH", path, {"role": "GUEST", "expireTime": from_now(-60)}, owner.token)
    assert past.status == 400
    assert past.reason == "EXPIRY_IN_PAST"
    assert api.call("PATCH", path, {"role": 9}, token=owner.token).status == 400
    stranger = person(api)
    assert api.call("PATCH", path, {"role": "GUEST"}, token=stranger.token).status == 404
    missing = api.call(
        "PATCH", f"/spaces/{home_id}/users/{stranger.user_id}", {"role": "GUEST"}, owner.token
    )
    assert missing.status == 404
    assert missing.reason == "MEMBER_NOT_FOUND"

    owner_path = f"/spaces/{home_id}/users/{owner.user_id}"
    last = api.call("PATCH", owner_path, {"role": "MAINTAINER"}, token=owner.token)
    assert last.status == 400
    assert last.reason == "LAST_OWNER"
    add_member(api, root.token, home_id, second.user_id, "OWNER")
    demoted = ok(api.call("PATCH", owner_path, {"role": "GUEST"}, token=second.token))
    assert demoted["spaceUser"]["role"] == "GUEST"
    assert ok(api.call("GET", f"/spaces/{home_id}", token=second.token))["space"]["ownerId"] == (
        second.user_id
    )
    second_path = f"/spaces/{home_id}/users/{second.user_id}"
    by_admin = api.call("PATCH", second_path, {"role": "MAINTAINER"}, token=root.token)
    assert by_admin.status == 400
    assert by_admin.reason == "LAST_OWNER"
    room = create_room(api, second.token, home_id)
    on_room = api.call(
        "PATCH", f"/spaces/{room}/users/{guest.user_id}", {"role": "GUEST"}, second.token
    )
    assert on_room.status == 400
    assert on_room.reason == "MEMBERS_BELONG_TO_HOME"


def test_removing_and_leaving(api: Rest, root: Person) -> None:
    home = home_with_members(api)
    guest_path = f"/spaces/{home.id}/users/{home.guest.user_id}"
    maintainer_path = f"/spaces/{home.id}/users/{home.maintainer.user_id}"
    owner_path = f"/spaces/{home.id}/users/{home.owner.user_id}"
    assert api.call("DELETE", guest_path, token=home.maintainer.token).status == 403
    assert api.call("DELETE", maintainer_path, token=home.guest.token).status == 403
    assert api.call("DELETE", guest_path, token=home.stranger.token).status == 404
    assert api.call("DELETE", guest_path).status == 401

    assert ok(api.call("DELETE", guest_path, token=home.guest.token)) == {}  # leaving
    assert api.call("GET", f"/spaces/{home.id}", token=home.guest.token).status == 404
    again = api.call("DELETE", guest_path, token=home.owner.token)
    assert again.status == 404
    assert again.reason == "MEMBER_NOT_FOUND"
    assert ok(api.call("DELETE", maintainer_path, token=home.owner.token)) == {}
    assert api.call("GET", f"/spaces/{home.id}", token=home.maintainer.token).status == 404
    assert member_ids(api, home.id, home.owner.token) == {home.owner.user_id}

    for caller in (home.owner, root):
        last = api.call("DELETE", owner_path, token=caller.token)
        assert last.status == 400, caller
        assert last.reason == "LAST_OWNER"
    add_member(api, home.owner.token, home.id, home.maintainer.user_id, "OWNER")
    assert ok(api.call("DELETE", owner_path, token=home.owner.token)) == {}
    space = ok(api.call("GET", f"/spaces/{home.id}", token=home.maintainer.token))["space"]
    assert space["ownerId"] == home.maintainer.user_id


# UpdateSpace and DeleteSpace


def test_renaming(api: Rest, home: Home, root: Person) -> None:
    for space_id in (home.id, home.room_id):
        renamed = api.call("PATCH", f"/spaces/{space_id}", {"name": "Дом"}, token=home.owner.token)
        assert ok(renamed)["space"]["name"] == "Дом"
        assert ok(renamed)["space"]["spaceId"] == space_id
        assert ok(api.call("PATCH", f"/spaces/{space_id}", {"name": "Дом 2"}, token=root.token))
        for member in (home.maintainer, home.guest):
            refused = api.call("PATCH", f"/spaces/{space_id}", {"name": "Мой"}, member.token)
            assert refused.status == 403
        stranger = api.call("PATCH", f"/spaces/{space_id}", {"name": "Мой"}, home.stranger.token)
        assert stranger.status == 404
    assert api.call("PATCH", f"/spaces/{home.id}", {"name": "Мой"}).status == 401
    read = ok(api.call("GET", f"/spaces/{home.id}", token=home.guest.token))["space"]
    assert read["name"] == "Дом 2"
    for bad in ("", "x" * 101, "nul\x00"):
        reply = api.call("PATCH", f"/spaces/{home.id}", {"name": bad}, token=home.owner.token)
        assert reply.status == 400


def test_deleting_a_home_deletes_its_rooms(api: Rest, root: Person) -> None:
    home = home_with_members(api)
    for member in (home.maintainer, home.guest):
        assert api.call("DELETE", f"/spaces/{home.id}", token=member.token).status == 403
    assert api.call("DELETE", f"/spaces/{home.id}", token=home.stranger.token).status == 404
    assert api.call("DELETE", f"/spaces/{home.id}").status == 401
    assert ok(api.call("DELETE", f"/spaces/{home.id}", token=home.owner.token)) == {}
    for space_id in (home.id, home.room_id):
        for caller in (home.owner, root):
            gone = api.call("GET", f"/spaces/{space_id}", token=caller.token)
            assert gone.status == 404, (space_id, caller)
    assert api.call("DELETE", f"/spaces/{home.id}", token=root.token).status == 404
    assert pages(api, "/spaces", home.owner.token, "spaces") == []


def test_a_room_is_deleted_alone(api: Rest) -> None:
    home = home_with_members(api)
    other = create_room(api, home.owner.token, home.id, "Ванная")
    assert ok(api.call("DELETE", f"/spaces/{other}", token=home.owner.token)) == {}
    assert api.call("GET", f"/spaces/{other}", token=home.owner.token).status == 404
    assert api.call("GET", f"/spaces/{home.room_id}", token=home.owner.token).status == 200


def test_a_space_holding_devices_is_not_deleted(api: Rest) -> None:
    home = home_with_members(api)
    device_id = device_id_in(api, home.maintainer.token, home.room_id)
    for space_id in (home.id, home.room_id):
        refused = api.call("DELETE", f"/spaces/{space_id}", token=home.owner.token)
        assert refused.status == 400, space_id
        assert refused.reason == "SPACE_HAS_DEVICES"
    assert api.call("GET", f"/spaces/{home.room_id}", token=home.owner.token).status == 200
    assert api.call("DELETE", f"/devices/{device_id}", token=home.owner.token).status == 200
    assert ok(api.call("DELETE", f"/spaces/{home.id}", token=home.owner.token)) == {}


# Time and accounts end memberships without anyone acting


def test_a_guest_with_an_expiry_loses_access_on_its_own(api: Rest) -> None:
    home = home_with_members(api)
    device_id = device_id_in(api, home.owner.token, home.room_id)
    visitor = person(api)
    # Two seconds: long enough to see the access work, short enough to wait for.
    expire_at = time.monotonic() + 2.0
    add_member(api, home.owner.token, home.id, visitor.user_id, "GUEST", from_now(2.0))
    member = ok(api.call("GET", f"/spaces/{home.id}/users/{visitor.user_id}", token=visitor.token))
    assert member["spaceUser"]["expireTime"]
    assert api.call("GET", f"/spaces/{home.id}", token=visitor.token).status == 200
    assert api.call("GET", f"/devices/{device_id}", token=visitor.token).status == 200

    def locked_out() -> bool:
        return all(
            api.call("GET", path, token=visitor.token).status == 404
            for path in (f"/spaces/{home.id}", f"/spaces/{home.room_id}", f"/devices/{device_id}")
        )

    # Ends at expireTime whatever the expiry job has done; Device follows within 2 s.
    within = expire_at - time.monotonic() + 2.0
    wait_until(locked_out, timeout=within, interval=0.1, what="the guest's access ending")
    assert visitor.user_id not in member_ids(api, home.id, home.owner.token)
    assert ok(api.call("GET", "/spaces", token=visitor.token))["spaces"] == []
    # The expiry job removed the membership: adding the guest again is not a conflict.
    wait_until(
        lambda: (
            api.call(
                "POST",
                f"/spaces/{home.id}/users",
                {"userId": visitor.user_id, "role": "GUEST"},
                token=home.owner.token,
            ).status
            == 200
        ),
        timeout=5,
        interval=0.3,
        what="the expired membership being removed",
    )
    assert api.call("GET", f"/devices/{device_id}", token=visitor.token).status == 200


def test_a_deactivated_member_loses_every_membership(api: Rest) -> None:
    home = home_with_members(api)
    other_owner = person(api)
    other_home = create_home(api, other_owner)
    add_member(api, other_owner.token, other_home, home.maintainer.user_id, "GUEST")
    assert api.call(
        "DELETE", f"/users/{home.maintainer.user_id}", token=home.maintainer.token
    ).status == (200)
    wait_until(
        lambda: (
            home.maintainer.user_id not in member_ids(api, home.id, home.owner.token)
            and home.maintainer.user_id not in member_ids(api, other_home, other_owner.token)
        ),
        timeout=10,
        what="the deactivated member's memberships ending",
    )


def test_a_home_whose_only_owner_is_deactivated_stays_for_an_admin_to_reassign(
    api: Rest, root: Person
) -> None:
    home = home_with_members(api)
    assert api.call("DELETE", f"/users/{home.owner.user_id}", token=home.owner.token).status == 200
    wait_until(
        lambda: (
            ok(api.call("GET", f"/spaces/{home.id}", token=home.guest.token))["space"]["ownerId"]
            == ""
        ),
        timeout=10,
        what="the home losing its owner",
    )
    assert home.owner.user_id not in member_ids(api, home.id, home.guest.token)
    successor = person(api)
    add_member(api, root.token, home.id, successor.user_id, "OWNER")
    space = ok(api.call("GET", f"/spaces/{home.id}", token=successor.token))["space"]
    assert space["ownerId"] == successor.user_id
