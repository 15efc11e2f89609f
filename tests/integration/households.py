"""Homes with a member of each role, service credentials, and the events
services published: what the Space and Device tests share."""

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import pytest
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from warmhouse.space.v1 import space_pb2, space_pb2_grpc

from services.runtime.config import RuntimeSettings
from services.runtime.internal_auth import SERVICE_TOKEN_HEADER, ServiceCredentials
from services.runtime.timestamps import timestamp
from tests.accounts import Metadata
from tests.integration.mesh import Mesh, People, Person

if TYPE_CHECKING:
    from warmhouse.space.v1.space_pb2_grpc import SpaceServiceAsyncStub

M = TypeVar("M", bound=Message)
Role: TypeAlias = space_pb2.SpaceUserRole.ValueType


def as_service(runtime_settings: RuntimeSettings, name: str) -> Metadata:
    """The credential service `name` sends with its internal calls."""
    credentials = ServiceCredentials(runtime_settings.derived_key("service-credentials"), name)
    return ((SERVICE_TOKEN_HEADER, credentials.token()),)


async def new_home(spaces: "SpaceServiceAsyncStub", owner: Person, name: str = "Home") -> str:
    created = await spaces.CreateSpace(space_pb2.CreateSpaceRequest(name=name), metadata=owner.auth)
    return str(created.space_id)


async def new_room(
    spaces: "SpaceServiceAsyncStub", by: Person, home: str, name: str = "Room"
) -> str:
    request = space_pb2.CreateSpaceRequest(name=name, parent_space_id=home)
    return str((await spaces.CreateSpace(request, metadata=by.auth)).space_id)


async def add_member(
    spaces: "SpaceServiceAsyncStub",
    by: Person,
    home: str,
    user_id: str,
    role: Role,
    expire_at: datetime | None = None,
) -> space_pb2.SpaceUser:
    request = space_pb2.AddSpaceUserRequest(space_id=home, user_id=user_id, role=role)
    if expire_at is not None:
        request.expire_time.CopyFrom(timestamp(expire_at))
    return (await spaces.AddSpaceUser(request, metadata=by.auth)).space_user


@dataclass(frozen=True)
class Household:
    home: str
    room: str
    owner: Person
    maintainer: Person
    guest: Person
    stranger: Person
    admin: Person

    def callers(self) -> dict[str, Person]:
        return {
            "owner": self.owner,
            "maintainer": self.maintainer,
            "guest": self.guest,
            "stranger": self.stranger,
            "admin": self.admin,
        }


async def new_household(spaces: "SpaceServiceAsyncStub", people: People) -> Household:
    owner, maintainer, guest, stranger = [await people.new() for _ in range(4)]
    home = await new_home(spaces, owner)
    room = await new_room(spaces, owner, home)
    await add_member(spaces, owner, home, maintainer.user_id, space_pb2.MAINTAINER)
    await add_member(spaces, owner, home, guest.user_id, space_pb2.GUEST)
    return Household(home, room, owner, maintainer, guest, stranger, people.admin())


@pytest.fixture(scope="module")
async def household(mesh: Mesh, people: People) -> Household:
    """One per test module, for the tests that change nothing of its membership."""
    return await new_household(space_pb2_grpc.SpaceServiceStub(mesh.space_channel), people)


async def published(jetstream: JetStreamContext, stream: str, subject: str) -> list[Msg]:
    """Every message on `subject` (wildcards allowed) so far, in stream order."""
    config = ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30.0)
    pull = await jetstream.pull_subscribe(subject, stream=stream, config=config)
    found: list[Msg] = []
    try:
        while True:
            try:
                batch = await pull.fetch(256, timeout=0.5)
            except TimeoutError:
                return found
            found += batch
            if batch[-1].metadata.num_pending == 0:
                return found
    finally:
        await pull.unsubscribe()


async def events_about(
    jetstream: JetStreamContext, stream: str, kind: type[M], field: str, value: str
) -> list[M]:
    """The events of that kind published so far whose `field` is `value`."""
    messages = await published(jetstream, stream, str(kind.DESCRIPTOR.full_name))
    events = [kind.FromString(message.data) for message in messages]
    return [event for event in events if getattr(event, field, None) == value]
