"""The bench's probe service: names shared by the probe host and the load client.

`warmhouse.bench.v1.ProbeService` has no proto; every method takes and returns
raw bytes. It exists only in the bench's probe host (`bench/probe_host.py`),
never in a shipped service.
"""

PROBE_SERVICE = "warmhouse.bench.v1.ProbeService"


def _path(method: str) -> str:
    return f"/{PROBE_SERVICE}/{method}"


# Public; answers with the request's bytes and does nothing else.
ECHO = _path("Echo")
# Needs a user's access token; request: a user id (UTF-8); answer: that user's row.
RAW_READ = _path("RawRead")
# Public; request: a serialized CreateUserRequest; answer: the new user's id (UTF-8).
RAW_WRITE = _path("RawWrite")
# Public; as RawWrite, but through the User service's unit of work and repository.
WRITE = _path("Write")
# Public; answer: how many times the stubbed password hash was called (decimal, UTF-8).
STUBBED_HASHES = _path("StubbedHashes")

PUBLIC_METHODS = frozenset({ECHO, RAW_WRITE, WRITE, STUBBED_HASHES})
