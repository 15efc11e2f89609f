"""Load on one REST endpoint from Python: a fallback for machines without wrk.

On 2 cores this client, not Envoy, is likely the bottleneck; its figures are
a floor for what Envoy can do.
"""

from collections.abc import Mapping

from bench.closed_loop import Budget, Call, run_closed_loop
from bench.figures import LoadFigures
from bench.http1 import Http1Connection


class PythonHttpLoad:
    """Closed-loop GETs over `concurrency` keep-alive connections, one request in flight each."""

    def __init__(self, base_url: str, concurrency: int) -> None:
        self.base_url = base_url
        self.concurrency = concurrency
        self.description = (
            f"asyncio HTTP/1.1 keep-alive client in Python ({concurrency} connections)"
        )

    async def get(self, path: str, headers: Mapping[str, str], budget: Budget) -> LoadFigures:
        connections = [Http1Connection(self.base_url) for _ in range(self.concurrency)]
        try:
            return await run_closed_loop([_get(c, path, headers) for c in connections], budget)
        finally:
            for connection in connections:
                await connection.close()


def _get(connection: Http1Connection, path: str, headers: Mapping[str, str]) -> Call:
    prepared = connection.prepare("GET", path, headers)

    async def call() -> str | None:
        response = await connection.exchange(prepared)
        if response.status == 200:
            return None
        return f"HTTP {response.status}: {response.body[:200]!r}"

    return call
