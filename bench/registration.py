"""The cost of registering: `POST /users` through Envoy, each with an unused email.

Dominated by the argon2id hash of the password, which the service computes
off its event loop.
"""

from bench.account import JSON_HEADERS, registration_body
from bench.closed_loop import Budget, Call, run_closed_loop
from bench.figures import LoadFigures
from bench.http1 import Http1Connection


async def register_users(base_url: str, concurrency: int, budget: Budget) -> LoadFigures:
    """Closed-loop registrations over `concurrency` keep-alive connections."""
    connections = [Http1Connection(base_url) for _ in range(concurrency)]
    try:
        return await run_closed_loop([_register(c) for c in connections], budget)
    finally:
        for connection in connections:
            await connection.close()


def _register(connection: Http1Connection) -> Call:
    async def call() -> str | None:
        # A fresh email each time; encoding it costs microseconds, the hash tens of ms.
        body = registration_body("load")
        response = await connection.request("POST", "/users", JSON_HEADERS, body)
        if response.status == 200:
            return None
        return f"HTTP {response.status}: {response.body[:200]!r}"

    return call
