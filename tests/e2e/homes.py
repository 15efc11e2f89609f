"""People, homes and devices for tests through Envoy's REST API.

A `Home` has one member of each role and a stranger next to it, so a test can
ask "who may do this?" of every kind of caller in a line.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.accounts import register, token_of
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.e2e.rest import Reply, Rest


@dataclass(frozen=True)
class Person:
    user_id: str
    email: str
    token: str


def person(api: Rest) -> Person:
    """A new USER, logged in."""
    user_id, email = register(api)
    return Person(user_id, email, token_of(api, email))


def admin(api: Rest) -> Person:
    session = api.call("POST", "/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert session.status == 200, session.body
    return Person(str(session.body["userId"]), ADMIN_EMAIL, str(session.body["accessToken"]))


def rfc3339(moment: datetime) -> str:
    """A Timestamp as proto3 JSON spells it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_now(seconds: float) -> str:
    return rfc3339(datetime.now(UTC) + timedelta(seconds=seconds))


def ok(reply: Reply) -> Any:
    """The body of a reply that must have succeeded."""
    assert reply.status == 200, reply
    return reply.body


def create_home(api: Rest, owner: Person, name: str = "Квартира") -> str:
    return str(ok(api.call("POST", "/spaces", {"name": name}, token=owner.token))["spaceId"])


def create_room(api: Rest, token: str, home_id: str, name: str = "Комната") -> str:
    body = {"name": name, "parentSpaceId": home_id}
    return str(ok(api.call("POST", "/spaces", body, token=token))["spaceId"])


def add_member(
    api: Rest,
    token: str,
    home_id: str,
    user_id: str,
    role: str,
    expire_time: str | None = None,
) -> dict[str, Any]:
    """The new SpaceUser as JSON."""
    body: dict[str, str] = {"userId": user_id, "role": role}
    if expire_time is not None:
        body["expireTime"] = expire_time
    reply = api.call("POST", f"/spaces/{home_id}/users", body, token=token)
    return dict(ok(reply)["spaceUser"])


@dataclass(frozen=True)
class Home:
    """A home with one room and a member of each role; `stranger` belongs to none."""

    id: str
    room_id: str
    owner: Person
    maintainer: Person
    guest: Person
    stranger: Person

    @property
    def members(self) -> tuple[Person, Person, Person]:
        return self.owner, self.maintainer, self.guest


def home_with_members(api: Rest) -> Home:
    owner, maintainer, guest, stranger = (person(api) for _ in range(4))
    home_id = create_home(api, owner)
    room_id = create_room(api, owner.token, home_id)
    add_member(api, owner.token, home_id, maintainer.user_id, "MAINTAINER")
    add_member(api, owner.token, home_id, guest.user_id, "GUEST")
    return Home(home_id, room_id, owner, maintainer, guest, stranger)


def register_device(
    api: Rest, token: str, space_id: str, name: str = "Радиатор", device_type: str = "HEATER"
) -> dict[str, Any]:
    """The RegisterDeviceResponse as JSON: {device, deviceSecret}."""
    body = {"spaceId": space_id, "type": device_type, "name": name}
    return dict(ok(api.call("POST", "/devices", body, token=token)))


def device_id_in(api: Rest, token: str, space_id: str, name: str = "Радиатор") -> str:
    return str(register_device(api, token, space_id, name)["device"]["deviceId"])


def pages(api: Rest, path: str, token: str, key: str, page_size: int = 1) -> list[Any]:
    """Every item of a listing, read `page_size` at a time by following nextPageToken."""
    items: list[Any] = []
    page_token = ""
    separator = "&" if "?" in path else "?"
    for _ in range(1000):
        reply = api.call(
            "GET", f"{path}{separator}pageSize={page_size}&pageToken={page_token}", token=token
        )
        body = ok(reply)
        assert len(body[key]) <= page_size
        items.extend(body[key])
        page_token = body["nextPageToken"]
        if not page_token:
            return items
    raise AssertionError(f"{path} never reached its last page")
