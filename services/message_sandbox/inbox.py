"""What reached people: a client of the sandbox's test API, for tests and the
bench to read what its SMTP server and SMS and push gateways received."""

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Inbox:
    url: str
    api_key: str

    def _call(self, method: str, path: str, body: object = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def messages(self, channel: str, to: str | None = None) -> list[dict[str, Any]]:
        """What `to` (an e-mail address, a phone number, a user id for push)
        received; everyone's when None."""
        query = urllib.parse.urlencode({"channel": channel, **({"to": to} if to else {})})
        return list(self._call("GET", f"/v1/sandbox/messages?{query}")["messages"])

    def fail_next(self, channel: str, count: int, kind: str = "transient") -> None:
        self._call(
            "POST", "/v1/sandbox/failures", {"channel": channel, "count": count, "kind": kind}
        )


def text_of(message: dict[str, Any]) -> str:
    return " ".join(str(message.get(part, "")) for part in ("subject", "title", "body"))
