"""What reached people: the messages the local stack's SMTP server and SMS and
push gateways (services/message_sandbox) received, read over its test API."""

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from services.devstack.stack import Stack

EMAIL, SMS, PUSH = "email", "sms", "push"
CHANNELS = (EMAIL, SMS, PUSH)


@dataclass(frozen=True)
class Inbox:
    url: str
    api_key: str

    @classmethod
    def of(cls, stack: Stack) -> "Inbox":
        sandbox = stack.message_sandbox
        assert sandbox is not None, "the stack runs no Notification service"
        return cls(sandbox.http_url, sandbox.sms_api_key)

    def _call(self, method: str, path: str, body: object = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def messages(self, channel: str, to: str) -> list[dict[str, Any]]:
        """What `to` (an e-mail address, a phone number, a user id for push) received."""
        query = urllib.parse.urlencode({"channel": channel, "to": to})
        return list(self._call("GET", f"/v1/sandbox/messages?{query}")["messages"])

    def fail_next(self, channel: str, count: int, kind: str = "transient") -> None:
        self._call(
            "POST", "/v1/sandbox/failures", {"channel": channel, "count": count, "kind": kind}
        )


def address_on(channel: str, email: str, phone: str, user_id: str) -> str:
    return {EMAIL: email, SMS: phone, PUSH: user_id}[channel]


def text_of(message: dict[str, Any]) -> str:
    return " ".join(str(message.get(part, "")) for part in ("subject", "title", "body"))
