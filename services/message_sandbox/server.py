"""The SMS and push gateways over HTTP, and the sandbox's test controls.

Body limits, error answers and writing are the payment sandbox's request
handler (services/payment_sandbox/server.py); only routing and keys differ.
"""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import cast
from urllib.parse import urlsplit

from services.message_sandbox import validation
from services.message_sandbox.store import (
    PUSH,
    SMS,
    TRANSIENT,
    DeliveryRefused,
    MessageStore,
    StoredMessage,
)
from services.payment_sandbox.answers import Answer, json_answer
from services.payment_sandbox.errors import ApiError, InvalidRequest, NotFound, Unauthenticated
from services.payment_sandbox.server import JsonRequestHandler, is_authorized, parse_query
from services.payment_sandbox.validation import idempotency_key


class Unavailable(ApiError):
    """An injected transient failure: the gateway is down for now."""

    status = 503


@dataclass(frozen=True)
class Request:
    query: dict[str, list[str]]
    body: bytes
    idempotency_key: str | None


Handler = Callable[[MessageStore, Request], Answer]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handle: Handler
    # The names of the keys that may call it (any of them); none: public.
    keys: frozenset[str]


def _send_sms(store: MessageStore, request: Request) -> Answer:
    sms = validation.sms_request(request.body)
    return _deliver(store, SMS, request, (sms.to,), "", sms.body)


def _send_push(store: MessageStore, request: Request) -> Answer:
    push = validation.push_request(request.body)
    return _deliver(store, PUSH, request, (push.user_id,), push.title, push.body)


def _deliver(
    store: MessageStore,
    channel: str,
    request: Request,
    recipients: tuple[str, ...],
    subject: str,
    body: str,
) -> Answer:
    message = StoredMessage(
        channel=channel,
        recipients=recipients,
        subject=subject,
        body=body,
        key=idempotency_key(request.idempotency_key),
        received_at=time.time(),
        id=f"{channel}_{secrets.token_hex(12)}",
    )
    try:
        stored = store.deliver(message, idempotent=True)
    except DeliveryRefused as refused:
        if refused.kind == TRANSIENT:
            raise Unavailable("the gateway is unavailable, retry later", "unavailable") from None
        raise InvalidRequest("the recipient refuses this message", "recipient_rejected") from None
    return json_answer(200, {"id": stored.id, "status": "accepted"})


def _messages(store: MessageStore, request: Request) -> Answer:
    channel, to = validation.messages_query(request.query)
    return json_answer(200, {"messages": store.messages(channel, to)})


def _add_failures(store: MessageStore, request: Request) -> Answer:
    failure = validation.failure_request(request.body)
    pending = store.add_failures(failure.channel, failure.count, failure.kind)
    return json_answer(200, {"channel": failure.channel, "pending": pending})


def _reset(store: MessageStore, request: Request) -> Answer:
    store.reset()
    return json_answer(200, {"status": "reset"})


EITHER = frozenset({SMS, PUSH})
ROUTES = (
    Route("GET", "/healthz", lambda s, r: json_answer(200, {"status": "ok"}), frozenset()),
    Route("POST", "/v1/sms", _send_sms, frozenset({SMS})),
    Route("POST", "/v1/push", _send_push, frozenset({PUSH})),
    Route("GET", "/v1/sandbox/messages", _messages, EITHER),
    Route("POST", "/v1/sandbox/failures", _add_failures, EITHER),
    Route("POST", "/v1/sandbox/reset", _reset, EITHER),
)


def find_route(method: str, path: str) -> Route | None:
    return next((r for r in ROUTES if r.method == method and r.path == path), None)


class GatewayServer(ThreadingHTTPServer):
    """One thread per request; `api_keys` maps "sms" and "push" to their keys."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], store: MessageStore, api_keys: dict[str, str]
    ) -> None:
        super().__init__(address, _GatewayRequestHandler)
        self.store = store
        self.api_keys = api_keys

    @property
    def port(self) -> int:
        port: int = self.socket.getsockname()[1]
        return port


class _GatewayRequestHandler(JsonRequestHandler):
    server_version = "WarmHouseMessageSandbox/1"

    def _answer(self, method: str) -> Answer:
        server = cast(GatewayServer, self.server)
        body = self._body()
        url = urlsplit(self.path)
        route = find_route(method, url.path)
        # Unknown paths need a key too: a caller without one learns nothing.
        keys = route.keys if route is not None else EITHER
        header = self.headers.get("Authorization")
        # Every key is compared (in constant time), whichever matches.
        matches = [is_authorized(header, server.api_keys[name]) for name in sorted(keys)]
        if keys and not any(matches):
            raise Unauthenticated("give the gateway's API key as Authorization: Bearer <key>")
        if route is None:
            raise NotFound("no such endpoint", "endpoint_missing")
        request = Request(parse_query(url.query), body, self.headers.get("Idempotency-Key"))
        return route.handle(server.store, request)
