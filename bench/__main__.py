"""`make bench`: throughput and latency of the whole stack, started just for this run.

Measures, at the same concurrency and for the same time, an authenticated
GetUser through Envoy's REST transcoding and straight over gRPC, then the cost
of registering (argon2id). Prints a table; with WARMHOUSE_BENCH_SAVE set, also
writes bench/results/latest.json. WARMHOUSE_BENCH_NO_WRK=1 uses the Python HTTP
client even where wrk is installed. Exits non-zero only when a request fails,
never because of a timing.
"""

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType

from bench.account import Account, SetupError, register_and_log_in
from bench.argon2_cost import HashFigures, time_hashes
from bench.closed_loop import Budget
from bench.figures import LoadFigures
from bench.grpc_load import get_user_direct
from bench.http_load import PythonHttpLoad
from bench.registration import register_users
from bench.report import Phase, Report
from bench.wrk import WrkError, WrkLoad, find_wrk
from services.devstack.child_process import StartupError
from services.devstack.ports import free_port
from services.devstack.stack import Stack

CONCURRENCY = 16
# Both GetUser phases: warm up, then measure, each bounded by time and by count.
WARMUP = Budget(max_requests=100_000, max_seconds=2.0)
MEASURE = Budget(max_requests=500_000, max_seconds=10.0)
REGISTRATION_CONCURRENCY = 4
REGISTRATION_WARMUP = Budget(max_requests=REGISTRATION_CONCURRENCY, max_seconds=30.0)
REGISTRATION = Budget(max_requests=50, max_seconds=60.0)
HASHES = 20
RESULTS_FILE = Path(__file__).parent / "results" / "latest.json"
# The bench's access token must outlive the run whatever the service's default.
STACK_ENV = {"WARMHOUSE_ACCESS_TOKEN_TTL_SECONDS": "3600"}

HttpLoad = WrkLoad | PythonHttpLoad


def main() -> int:
    # SIGTERM stops the stack exactly as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    started_at = datetime.now().astimezone()
    try:
        _progress(f"hashing {HASHES} passwords with argon2id in-process ...")
        hashing = asyncio.run(time_hashes(HASHES))
        with (
            tempfile.TemporaryDirectory(prefix="warmhouse-bench-") as data_dir,
            _running_stack(Path(data_dir)) as stack,
        ):
            report = asyncio.run(_measure(stack, started_at, hashing))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (StartupError, SetupError, WrkError) as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    print(report.table(), flush=True)
    if os.environ.get("WARMHOUSE_BENCH_SAVE"):
        report.save(RESULTS_FILE)
        print(f"saved {RESULTS_FILE}")
    return 1 if report.errors else 0


@contextlib.contextmanager
def _running_stack(data_dir: Path) -> Iterator[Stack]:
    _progress(f"starting the stack in {data_dir} ...")
    with Stack(data_dir, http_port=free_port(), extra_env=STACK_ENV) as stack:
        try:
            yield stack
        finally:
            # A second Ctrl-C must not cut the shutdown short and leave processes behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _progress("stopping the stack ...")


async def _measure(stack: Stack, started_at: datetime, hashing: HashFigures) -> Report:
    account = await register_and_log_in(stack.base_url)
    http_load = await _http_load(stack.base_url)
    path = f"/users/{account.user_id}"
    headers = {"Authorization": account.authorization}
    envoy = await _phase(
        "GET /users/{id} via Envoy (REST)",
        "envoy_get_user",
        CONCURRENCY,
        lambda budget: http_load.get(path, headers, budget),
        WARMUP,
        MEASURE,
    )
    direct = await _phase(
        "GetUser direct gRPC",
        "direct_get_user",
        CONCURRENCY,
        lambda budget: _direct(stack, account, budget),
        WARMUP,
        MEASURE,
    )
    registration = await _phase(
        "POST /users via Envoy (argon2id)",
        "envoy_register",
        REGISTRATION_CONCURRENCY,
        lambda budget: register_users(stack.base_url, REGISTRATION_CONCURRENCY, budget),
        REGISTRATION_WARMUP,
        REGISTRATION,
    )
    return Report(
        started_at=started_at,
        cpus=os.cpu_count() or 0,
        http_load=http_load.description,
        grpc_load=f"grpc.aio in Python, {CONCURRENCY} workers on one channel",
        envoy=envoy,
        direct=direct,
        registration=registration,
        hashing=hashing,
    )


async def _http_load(base_url: str) -> HttpLoad:
    executable = None if os.environ.get("WARMHOUSE_BENCH_NO_WRK") else find_wrk()
    if executable is None:
        return PythonHttpLoad(base_url, CONCURRENCY)
    load = WrkLoad(executable, base_url, CONCURRENCY)
    await load.describe_version()
    return load


async def _direct(stack: Stack, account: Account, budget: Budget) -> LoadFigures:
    return await get_user_direct(stack.grpc_address("user"), account, CONCURRENCY, budget)


async def _phase(
    label: str,
    key: str,
    concurrency: int,
    run: Callable[[Budget], Awaitable[LoadFigures]],
    warmup: Budget,
    measure: Budget,
) -> Phase:
    _progress(f"{label}: warming up ...")
    warmed = await run(warmup)
    _progress(f"{label}: measuring ...")
    measured = await run(measure)
    return Phase(label, key, concurrency, warmed, measured)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
