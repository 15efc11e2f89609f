"""The homes the Device phases run in, set up through the REST API as their users would.

One OWNER creates every home and adds one MAINTAINER to each. The MAINTAINER
did not create any of them, so what Device knows of its memberships comes
from its projection of Space's events (or Space's answer to a miss), never
from having made the space itself.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bench.account import JSON_HEADERS, Account, SetupError, register_and_log_in
from bench.http1 import Http1Connection


@dataclass(frozen=True)
class Estate:
    owner: Account
    maintainer: Account
    # Holds the same number of devices whichever size the devices table is.
    measured_home: str
    # The home whose device list is read, and its two rooms.
    listed_home: str
    listed_rooms: tuple[str, str]
    # The rest of the table's devices live here.
    other_homes: tuple[str, ...]

    @property
    def homes(self) -> tuple[str, ...]:
        return (self.measured_home, self.listed_home, *self.other_homes)


async def set_up_estate(base_url: str, other_homes: int) -> Estate:
    """Two accounts, `other_homes` + 2 homes, two rooms; the MAINTAINER a member of every home."""
    owner = await register_and_log_in(base_url)
    maintainer = await register_and_log_in(base_url)
    connection = Http1Connection(base_url)
    try:
        rest = _Rest(connection, owner)
        measured_home = await rest.create_space("bench measured home")
        listed_home = await rest.create_space("bench listed home")
        rooms = (
            await rest.create_space("bench room 1", parent=listed_home),
            await rest.create_space("bench room 2", parent=listed_home),
        )
        others = tuple([await rest.create_space(f"bench home {n}") for n in range(other_homes)])
        for home in (measured_home, listed_home, *others):
            await rest.add_maintainer(home, maintainer)
    finally:
        await connection.close()
    return Estate(owner, maintainer, measured_home, listed_home, rooms, others)


async def list_all_devices(base_url: str, account: Account, space_id: str) -> list[str]:
    """Every device id `GET /spaces/{id}/devices` lists, page by page (100 a page)."""
    connection = Http1Connection(base_url)
    device_ids: list[str] = []
    token = ""
    try:
        rest = _Rest(connection, account)
        while True:
            query = f"?pageSize=100&pageToken={quote(token, safe='')}" if token else "?pageSize=100"
            page = await rest.call("GET", f"/spaces/{space_id}/devices{query}")
            device_ids += [str(device["deviceId"]) for device in page.get("devices", [])]
            token = str(page.get("nextPageToken", ""))
            if not token:
                return device_ids
    finally:
        await connection.close()


class _Rest:
    """JSON calls on one connection as one account; any answer but 200 is a SetupError."""

    def __init__(self, connection: Http1Connection, account: Account) -> None:
        self._connection = connection
        self._headers: Mapping[str, str] = {"Authorization": account.authorization}

    async def create_space(self, name: str, parent: str = "") -> str:
        body = {"name": name, "parentSpaceId": parent} if parent else {"name": name}
        created = await self.call("POST", "/spaces", body)
        return str(created["spaceId"])

    async def add_maintainer(self, home: str, member: Account) -> None:
        body = {"userId": member.user_id, "role": "MAINTAINER"}
        added = await self.call("POST", f"/spaces/{home}/users", body)
        role = added.get("spaceUser", {}).get("role")
        if role != "MAINTAINER":
            raise SetupError(f"adding a MAINTAINER answered role {role!r}")

    async def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        headers = dict(self._headers)
        payload = b""
        if body is not None:
            headers |= JSON_HEADERS
            payload = json.dumps(body).encode()
        response = await self._connection.request(method, path, headers, payload)
        if response.status != 200:
            raise SetupError(f"{method} {path} answered {response.status}: {response.body[:300]!r}")
        reply: dict[str, Any] = json.loads(response.body)
        return reply
