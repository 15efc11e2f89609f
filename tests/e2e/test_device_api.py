"""Device Management through Envoy: devices in homes and rooms, their status and log."""

import uuid
from typing import Any

import pytest

from tests.e2e.homes import (
    Home,
    Person,
    add_member,
    create_home,
    create_room,
    device_id_in,
    home_with_members,
    ok,
    pages,
    person,
    register_device,
)
from tests.e2e.rest import Rest
from tests.polling import wait_until


def device_ids(api: Rest, space_id: str, token: str) -> set[str]:
    devices = pages(api, f"/spaces/{space_id}/devices", token, "devices", page_size=100)
    return {device["deviceId"] for device in devices}


def logs(api: Rest, device_id: str, token: str, kind: str = "") -> list[dict[str, Any]]:
    query = f"?kind={kind}" if kind else ""
    return pages(api, f"/devices/{device_id}/logs{query}", token, "deviceLogs", page_size=100)


# RegisterDevice and reading devices


def test_a_device_registered_in_a_room_is_listed_from_its_home(api: Rest, home: Home) -> None:
    registered = register_device(api, home.owner.token, home.room_id, "Радиатор", "HEATER")
    assert set(registered) == {"device", "deviceSecret"}
    device = registered["device"]
    assert uuid.UUID(device["deviceId"])
    assert device["spaceId"] == home.room_id
    assert device["type"] == "HEATER"
    assert device["name"] == "Радиатор"
    assert device["status"] == "OFFLINE"
    assert device["createTime"]
    assert "lastReading" not in device
    # token_urlsafe(32): 256 bits, 43 characters.
    assert len(registered["deviceSecret"]) >= 43
    for member in home.members:
        assert device["deviceId"] in device_ids(api, home.id, member.token), member
        assert device["deviceId"] in device_ids(api, home.room_id, member.token), member
    read = ok(api.call("GET", f"/devices/{device['deviceId']}", token=home.guest.token))
    assert read["device"] == device
    assert "secret" not in str(read).lower()
    assert registered["deviceSecret"] not in str(read)


def test_secrets_differ_and_every_type_registers(api: Rest, home: Home) -> None:
    secrets = {
        register_device(api, home.maintainer.token, home.id, kind.title(), kind)["deviceSecret"]
        for kind in ("HEATER", "SENSOR", "CONTROLLER")
    }
    assert len(secrets) == 3


def test_a_new_space_takes_a_device_at_once(api: Rest) -> None:
    """The Device service has not heard of the space yet: it asks Space, not 403/404."""
    owner = person(api)
    for _ in range(5):
        home_id = create_home(api, owner)
        room_id = create_room(api, owner.token, home_id)
        assert register_device(api, owner.token, room_id)["device"]["spaceId"] == room_id


def test_a_new_member_registers_at_once(api: Rest, home: Home) -> None:
    newcomer = person(api)
    add_member(api, home.owner.token, home.id, newcomer.user_id, "MAINTAINER")
    assert register_device(api, newcomer.token, home.room_id)["device"]["deviceId"]


def test_who_may_register(api: Rest, home: Home, root: Person) -> None:
    body = {"spaceId": home.room_id, "type": "SENSOR", "name": "Датчик"}
    for caller in (home.owner, home.maintainer, root):
        assert api.call("POST", "/devices", body, token=caller.token).status == 200, caller
    guest = api.call("POST", "/devices", body, token=home.guest.token)
    assert guest.status == 403
    assert guest.reason == "SPACE_ROLE_INSUFFICIENT"
    hidden = api.call("POST", "/devices", body, token=home.stranger.token)
    unknown = api.call("POST", "/devices", {**body, "spaceId": str(uuid.uuid4())}, root.token)
    assert hidden.status == unknown.status == 404
    assert hidden.reason == unknown.reason == "SPACE_NOT_FOUND"
    assert api.call("POST", "/devices", body).status == 401


@pytest.mark.parametrize(
    "change",
    [
        {"type": "TOASTER"},
        {"type": 9},
        {"type": "DEVICE_TYPE_UNSPECIFIED"},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "nul\x00"},
        {"spaceId": "not-a-uuid"},
        {"spaceId": ""},
    ],
    ids=[
        "unknown type",
        "type 9",
        "unspecified type",
        "empty name",
        "long name",
        "NUL",
        "bad id",
        "no space",
    ],
)
def test_bad_registrations_are_400(api: Rest, home: Home, change: dict[str, object]) -> None:
    body = {"spaceId": home.id, "type": "HEATER", "name": "ok", **change}
    reply = api.call("POST", "/devices", body, token=home.owner.token)
    assert reply.status == 400, reply


def test_members_and_admins_read_a_device_strangers_get_404(
    api: Rest, home: Home, root: Person
) -> None:
    device_id = device_id_in(api, home.owner.token, home.room_id)
    for caller in (*home.members, root):
        assert ok(api.call("GET", f"/devices/{device_id}", token=caller.token))["device"]
        assert device_id in device_ids(api, home.room_id, caller.token)
    nowhere = str(uuid.uuid4())
    hidden = api.call("GET", f"/devices/{device_id}", token=home.stranger.token)
    unknown = api.call("GET", f"/devices/{nowhere}", token=home.stranger.token)
    assert hidden.status == unknown.status == 404
    assert hidden.reason == unknown.reason == "DEVICE_NOT_FOUND"
    assert hidden.body["message"].replace(device_id, "ID") == unknown.body["message"].replace(
        nowhere, "ID"
    ), "a stranger learns nothing"
    assert api.call("GET", f"/devices/{device_id}").status == 401
    assert api.call("GET", "/devices/not-a-uuid", token=home.owner.token).status == 400
    listing = api.call("GET", f"/spaces/{home.id}/devices", token=home.stranger.token)
    assert listing.status == 404
    assert api.call("GET", f"/spaces/{home.id}/devices").status == 401


def test_a_room_lists_its_own_devices_a_home_all_of_them(api: Rest) -> None:
    home = home_with_members(api)
    other_room = create_room(api, home.owner.token, home.id, "Кухня")
    in_home = device_id_in(api, home.owner.token, home.id, "Котёл")
    in_room = device_id_in(api, home.owner.token, home.room_id, "Радиатор")
    in_other = device_id_in(api, home.owner.token, other_room, "Датчик")
    assert device_ids(api, home.id, home.guest.token) == {in_home, in_room, in_other}
    assert device_ids(api, home.room_id, home.guest.token) == {in_room}
    assert device_ids(api, other_room, home.guest.token) == {in_other}
    walked = pages(api, f"/spaces/{home.id}/devices", home.guest.token, "devices", page_size=2)
    assert sorted(device["deviceId"] for device in walked) == sorted([in_home, in_room, in_other])
    path = f"/spaces/{home.id}/devices"
    assert api.call("GET", f"{path}?pageSize=-1", token=home.owner.token).status == 400
    assert api.call("GET", f"{path}?pageToken=bm9wZQ", token=home.owner.token).status == 400


def test_a_page_token_of_another_listing_is_refused(api: Rest, home: Home) -> None:
    """Page tokens are signed by the service that issued them."""
    spaces = ok(api.call("GET", "/spaces?pageSize=1", token=home.owner.token))
    assert spaces["nextPageToken"]
    path = f"/spaces/{home.id}/devices?pageToken={spaces['nextPageToken']}"
    assert api.call("GET", path, token=home.owner.token).status == 400


# UpdateDeviceStatus and the log


def test_status_answers_as_the_spec_says_and_is_logged(api: Rest, home: Home) -> None:
    device_id = device_id_in(api, home.maintainer.token, home.room_id)
    path = f"/devices/{device_id}/status"
    reply = api.call("PATCH", path, {"status": "ONLINE"}, token=home.maintainer.token)
    assert reply.status == 200, reply
    assert reply.body == {"deviceId": device_id, "status": "ONLINE"}
    assert ok(api.call("GET", f"/devices/{device_id}", token=home.guest.token))["device"][
        "status"
    ] == ("ONLINE")
    changes = logs(api, device_id, home.guest.token, "STATUS_CHANGED")
    assert [entry["event"] for entry in changes] == ["status OFFLINE -> ONLINE"]
    assert changes[0]["deviceId"] == device_id
    assert changes[0]["kind"] == "STATUS_CHANGED"
    assert changes[0]["occurTime"]
    # The same status again changes nothing and writes nothing.
    same = api.call("PATCH", path, {"status": "ONLINE"}, token=home.owner.token)
    assert same.body == {"deviceId": device_id, "status": "ONLINE"}
    assert len(logs(api, device_id, home.owner.token, "STATUS_CHANGED")) == 1
    assert ok(api.call("PATCH", path, {"status": "ERROR"}, token=home.owner.token))["status"] == (
        "ERROR"
    )
    events = [entry["event"] for entry in logs(api, device_id, home.owner.token)]
    assert events[0] == "status ONLINE -> ERROR", "newest first"
    assert events[-1] == "registered"


def test_who_may_set_a_status(api: Rest, home: Home, root: Person) -> None:
    device_id = device_id_in(api, home.owner.token, home.id)
    path = f"/devices/{device_id}/status"
    assert ok(api.call("PATCH", path, {"status": "ERROR"}, token=root.token))["status"] == "ERROR"
    guest = api.call("PATCH", path, {"status": "OFFLINE"}, token=home.guest.token)
    assert guest.status == 403
    assert guest.reason == "SPACE_ROLE_INSUFFICIENT"
    assert api.call("PATCH", path, {"status": "OFFLINE"}, token=home.stranger.token).status == 404
    assert api.call("PATCH", path, {"status": "OFFLINE"}).status == 401
    unknown = api.call(
        "PATCH", f"/devices/{uuid.uuid4()}/status", {"status": "ONLINE"}, home.owner.token
    )
    assert unknown.status == 404
    for bad in ("BROKEN", 9, "DEVICE_STATUS_UNSPECIFIED", None):
        body = {} if bad is None else {"status": bad}
        reply = api.call("PATCH", path, body, token=home.owner.token)
        assert reply.status == 400, bad
    assert ok(api.call("GET", f"/devices/{device_id}", token=home.owner.token))["device"][
        "status"
    ] == ("ERROR")


def test_the_log_pages_newest_first_and_filters_by_kind(api: Rest, home: Home) -> None:
    device_id = device_id_in(api, home.owner.token, home.id)
    path = f"/devices/{device_id}/status"
    for status in ("ONLINE", "OFFLINE", "ONLINE", "ERROR"):
        assert api.call("PATCH", path, {"status": status}, token=home.owner.token).status == 200
    walked = pages(api, f"/devices/{device_id}/logs", home.guest.token, "deviceLogs", page_size=1)
    assert [entry["event"] for entry in walked] == [
        "status ONLINE -> ERROR",
        "status OFFLINE -> ONLINE",
        "status ONLINE -> OFFLINE",
        "status OFFLINE -> ONLINE",
        "registered",
    ]
    assert len({entry["logId"] for entry in walked}) == 5
    changed = logs(api, device_id, home.guest.token, "DEVICE_CHANGED")
    assert [(entry["kind"], entry["event"]) for entry in changed] == [
        ("DEVICE_CHANGED", "registered")
    ]
    assert logs(api, device_id, home.guest.token, "READING_RECORDED") == []
    logs_path = f"/devices/{device_id}/logs"
    for query in ("kind=99", "kind=TELEPATHY", "pageSize=-1", "pageToken=bm9wZQ"):
        reply = api.call("GET", f"{logs_path}?{query}", token=home.owner.token)
        assert reply.status == 400, query
    assert api.call("GET", logs_path, token=home.stranger.token).status == 404
    assert api.call("GET", logs_path).status == 401


# UpdateDevice, DeleteDevice, RotateDeviceSecret


def test_rename_and_move_within_the_home(api: Rest) -> None:
    home = home_with_members(api)
    kitchen = create_room(api, home.owner.token, home.id, "Кухня")
    device_id = device_id_in(api, home.maintainer.token, home.room_id)
    path = f"/devices/{device_id}"
    renamed = ok(api.call("PATCH", path, {"name": "Тёплый пол"}, token=home.maintainer.token))
    assert renamed["device"]["name"] == "Тёплый пол"
    assert renamed["device"]["spaceId"] == home.room_id
    moved = ok(api.call("PATCH", path, {"spaceId": kitchen}, token=home.owner.token))
    assert moved["device"]["spaceId"] == kitchen
    assert moved["device"]["name"] == "Тёплый пол"
    assert device_ids(api, kitchen, home.guest.token) == {device_id}
    assert device_ids(api, home.room_id, home.guest.token) == set()
    assert device_ids(api, home.id, home.guest.token) == {device_id}
    to_home = ok(api.call("PATCH", path, {"spaceId": home.id, "name": "Котёл"}, home.owner.token))
    assert (to_home["device"]["spaceId"], to_home["device"]["name"]) == (home.id, "Котёл")
    events = [entry["event"] for entry in logs(api, device_id, home.guest.token, "DEVICE_CHANGED")]
    assert events[-1] == "registered"
    assert "renamed" in events
    assert "moved" in events


def test_bad_updates(api: Rest, home: Home) -> None:
    device_id = device_id_in(api, home.owner.token, home.room_id)
    path = f"/devices/{device_id}"
    nothing = api.call("PATCH", path, {}, token=home.owner.token)
    assert nothing.status == 400
    assert nothing.reason == "NOTHING_TO_UPDATE"
    elsewhere = create_home(api, home.owner)
    for target in (elsewhere, str(uuid.uuid4())):
        away = api.call("PATCH", path, {"spaceId": target}, token=home.owner.token)
        assert away.status == 400, target
        assert away.reason == "SPACE_NOT_IN_HOME"
    for body in ({"name": ""}, {"name": "x" * 101}, {"spaceId": "not-a-uuid"}):
        assert api.call("PATCH", path, body, token=home.owner.token).status == 400, body
    guest = api.call("PATCH", path, {"name": "Мой"}, token=home.guest.token)
    assert guest.status == 403
    assert api.call("PATCH", path, {"name": "Мой"}, token=home.stranger.token).status == 404
    assert api.call("PATCH", path, {"name": "Мой"}).status == 401
    assert ok(api.call("GET", path, token=home.owner.token))["device"]["spaceId"] == home.room_id


def test_retiring_a_device(api: Rest, home: Home, root: Person) -> None:
    device_id = device_id_in(api, home.owner.token, home.room_id)
    path = f"/devices/{device_id}"
    assert api.call("DELETE", path, token=home.guest.token).status == 403
    assert api.call("DELETE", path, token=home.stranger.token).status == 404
    assert api.call("DELETE", path).status == 401
    assert ok(api.call("DELETE", path, token=home.maintainer.token)) == {}
    for caller in (home.owner, root):
        gone = api.call("GET", path, token=caller.token)
        assert gone.status == 404, caller
        assert gone.reason == "DEVICE_NOT_FOUND"
    assert device_id not in device_ids(api, home.id, home.owner.token)
    assert api.call("DELETE", path, token=home.owner.token).status == 404
    status = api.call("PATCH", f"{path}/status", {"status": "ONLINE"}, token=home.owner.token)
    assert status.status == 404
    assert api.call("POST", f"{path}/secret", {}, token=home.owner.token).status == 404
    admin_device = device_id_in(api, home.owner.token, home.room_id)
    assert ok(api.call("DELETE", f"/devices/{admin_device}", token=root.token)) == {}


def test_rotating_the_secret(api: Rest, home: Home, root: Person) -> None:
    registered = register_device(api, home.owner.token, home.room_id)
    device_id = registered["device"]["deviceId"]
    path = f"/devices/{device_id}/secret"
    rotated = ok(api.call("POST", path, {}, token=home.maintainer.token))
    assert set(rotated) == {"deviceSecret"}
    assert len(rotated["deviceSecret"]) >= 43
    again = ok(api.call("POST", path, {}, token=root.token))
    assert len({registered["deviceSecret"], rotated["deviceSecret"], again["deviceSecret"]}) == 3
    assert api.call("POST", path, {}, token=home.guest.token).status == 403
    assert api.call("POST", path, {}, token=home.stranger.token).status == 404
    assert api.call("POST", path, {}).status == 401
    changes = logs(api, device_id, home.owner.token, "DEVICE_CHANGED")
    assert len(changes) == 3, "registered, then rotated twice"
    assert all(again["deviceSecret"] not in entry["event"] for entry in changes)


def test_a_command_is_answered_with_its_id_and_status_and_read_back(api: Rest, home: Home) -> None:
    device_id = device_id_in(api, home.owner.token, home.room_id)
    path = f"/devices/{device_id}/command"
    body = {"kind": "SET_TARGET_TEMPERATURE", "targetTemperatureCelsius": 21}
    sent = ok(api.call("POST", path, body, token=home.guest.token))
    assert set(sent) == {"commandId", "status"}
    assert sent["status"] == "QUEUED"
    read = ok(
        api.call(
            "GET", f"/devices/{device_id}/commands/{sent['commandId']}", token=home.owner.token
        )
    )
    command = read["command"]
    assert command["targetTemperatureCelsius"] == 21
    assert command["requesterId"] == home.guest.user_id
    assert {"createTime", "updateTime", "expireTime"} <= set(command)
    listed = ok(api.call("GET", f"/devices/{device_id}/commands", token=home.maintainer.token))
    assert [c["commandId"] for c in listed["commands"]] == [sent["commandId"]]
    assert api.call("POST", path, {"kind": "TURN_OFF"}, token=home.guest.token).status == 403
    assert api.call("POST", path, {"kind": "TURN_OFF"}, token=home.stranger.token).status == 404
    unknown = f"/devices/{device_id}/commands/{uuid.uuid4()}"
    assert api.call("GET", unknown, token=home.owner.token).status == 404
    assert api.call("POST", path, {"kind": "TURN_ON"}).status == 401
    assert api.call("GET", f"/devices/{device_id}/commands").status == 401


# Membership changes reach Device


def test_a_removed_member_loses_the_devices_within_2_seconds(api: Rest) -> None:
    home = home_with_members(api)
    device_id = device_id_in(api, home.owner.token, home.room_id)
    for member in (home.maintainer, home.guest):
        assert api.call("GET", f"/devices/{device_id}", token=member.token).status == 200
    removed = api.call(
        "DELETE", f"/spaces/{home.id}/users/{home.maintainer.user_id}", token=home.owner.token
    )
    assert removed.status == 200
    loses_the_device_within_2_seconds(api, device_id, home.maintainer)
    left = api.call(
        "DELETE", f"/spaces/{home.id}/users/{home.guest.user_id}", token=home.guest.token
    )
    assert left.status == 200
    loses_the_device_within_2_seconds(api, device_id, home.guest)
    for gone in (home.maintainer, home.guest):
        listing = api.call("GET", f"/spaces/{home.room_id}/devices", token=gone.token)
        assert listing.status == 404
        status = api.call(
            "PATCH", f"/devices/{device_id}/status", {"status": "ERROR"}, token=gone.token
        )
        assert status.status == 404


def loses_the_device_within_2_seconds(api: Rest, device_id: str, former: Person) -> None:
    def hidden() -> bool:
        return api.call("GET", f"/devices/{device_id}", token=former.token).status == 404

    wait_until(hidden, timeout=2.0, what="the device disappearing for the former member")


def test_a_demoted_maintainer_loses_management_within_2_seconds(api: Rest) -> None:
    home = home_with_members(api)
    device_id = device_id_in(api, home.maintainer.token, home.room_id)
    path = f"/devices/{device_id}"
    assert ok(api.call("PATCH", path, {"name": "Котёл"}, token=home.maintainer.token))
    demoted = api.call(
        "PATCH",
        f"/spaces/{home.id}/users/{home.maintainer.user_id}",
        {"role": "GUEST"},
        token=home.owner.token,
    )
    assert demoted.status == 200
    wait_until(
        lambda: api.call("PATCH", path, {"name": "Мой"}, token=home.maintainer.token).status == 403,
        timeout=2.0,
        what="the demotion reaching Device",
    )
    assert api.call("GET", path, token=home.maintainer.token).status == 200
