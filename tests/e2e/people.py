"""People who receive messages, for tests through Envoy that read the message
sandbox (services/message_sandbox): each with a phone number of their own,
so the SMS, push and e-mail sent to one can be told from another's."""

from dataclasses import dataclass
from typing import Any

from services.message_sandbox.inbox import Inbox
from tests.e2e.accounts import new_phone, register, token_of
from tests.e2e.homes import Home, Person, add_member, create_home, create_room
from tests.e2e.rest import Rest


@dataclass(frozen=True)
class Resident:
    person: Person
    phone: str

    def address(self, channel: str) -> str:
        return {"email": self.person.email, "sms": self.phone, "push": self.person.user_id}[channel]


def resident(api: Rest, locale: str = "en", time_zone: str = "Europe/Moscow") -> Resident:
    phone = new_phone()
    user_id, email = register(api, phone=phone, locale=locale, time_zone=time_zone)
    return Resident(Person(user_id, email, token_of(api, email)), phone)


@dataclass(frozen=True)
class Household:
    home: Home
    residents: tuple[Resident, Resident, Resident]
    stranger: Resident


def household(api: Rest) -> Household:
    """Three members (the maintainer reads Russian) and a stranger next door."""
    owner, maintainer, guest = resident(api), resident(api, "ru"), resident(api)
    stranger = resident(api)
    home_id = create_home(api, owner.person, "Дача")
    room_id = create_room(api, owner.person.token, home_id, "Котельная")
    add_member(api, owner.person.token, home_id, maintainer.person.user_id, "MAINTAINER")
    add_member(api, owner.person.token, home_id, guest.person.user_id, "GUEST")
    home = Home(
        home_id,
        room_id,
        owner.person,
        maintainer.person,
        guest.person,
        stranger.person,
    )
    return Household(home, (owner, maintainer, guest), stranger)


def received_since(inbox: Inbox, who: Resident, channel: str, since: float) -> list[dict[str, Any]]:
    return [
        message
        for message in inbox.messages(channel, who.address(channel))
        if message["receivedAt"] >= since
    ]


def distinct(messages: list[dict[str, Any]]) -> int:
    """Messages, a re-sent e-mail (same Message-ID) counted once."""
    return len({m.get("messageId") or m["id"] for m in messages})
