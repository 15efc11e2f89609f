"""`make bench`: throughput and latency of the whole stack, started just for this run.

Every run measures its own baselines next to the real RPCs, so hot-path work is
judged by ratios from one run rather than by absolute figures (which drift
about 10 % between runs). Besides the stack it starts a probe host
(`bench/probe_host.py`): the User service on the shared runtime plus bench-only
probes, with its own database. All at 16 in flight, in interleaved rounds:

- Echo: a public RPC that does no work, on the probe host;
- RawRead: GetUser's row by one raw asyncpg fetchrow, behind the token check;
- GetUser direct gRPC, and GET /users/{id} through Envoy (to the stack);
- RawWrite: a registration's two INSERTs (users, outbox) in one raw asyncpg transaction;
- Write: the same two rows through the User service's unit of work and repository;
- CreateUser direct gRPC with the argon2 hash stubbed (in the probe host only),
  which also counts the attempt in a registration-throttle transaction;
- GetDevice direct gRPC and GET /devices/{id} through Envoy, as a MAINTAINER
  whose membership Device knows from its projection of Space's events, and
  GET /spaces/{id}/devices (first page of 100) of a home with 1,000 devices;

then registration through Envoy with argon2id, and argon2id hashes in-process.
Before the interleaved rounds it registers 10,000 devices over direct gRPC,
measuring GetDevice at 100 and at 10,000 devices (bench/devices.py).
Last, the device loop (bench/device_loop.py): command round trips through Envoy to
a simulated device and back (idle and under telemetry load), 10,000 streams with
heartbeats held by one adapter process (its memory per stream), and the telemetry
samples/s durable in JetStream, the devices simulated in a process of their own.
Prints a table; with WARMHOUSE_BENCH_SAVE set, also writes
bench/results/latest.json. WARMHOUSE_BENCH_NO_WRK=1 uses the Python HTTP
client even where wrk is installed. Exits non-zero only when a request fails
(or the probe host did not measure what it claims, or a home's device list
misses or repeats a device), never because of a timing.
"""

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import FrameType

import grpc
import uvloop

from bench.account import SetupError, register_and_log_in
from bench.argon2_cost import HashFigures, time_hashes
from bench.closed_loop import Budget
from bench.device_loop import LOOP_ENV, add_device_loop
from bench.devices import OTHER_HOMES, DeviceLoad, check_listing, grow_and_measure, read_plans
from bench.estate import set_up_estate
from bench.grpc_load import DirectLoad
from bench.http_load import PythonHttpLoad
from bench.probe_process import ProbeHost
from bench.registration import register_users
from bench.report import Report
from bench.rounds import Plan, measure_interleaved, measure_once
from bench.wrk import WrkError, WrkLoad, find_wrk
from services.device.description import DESCRIPTION as DEVICE
from services.devstack.child_process import StartupError
from services.devstack.envoy_config import TokenBucket
from services.devstack.ports import free_port
from services.devstack.stack import DEFAULT_RATE_LIMITS, Stack

CONCURRENCY = 16
# The interleaved phases: each round warms every phase up, then measures it,
# each bounded by time and by count; figures are medians over the rounds.
ROUNDS = 3
WARMUP = Budget(max_requests=50_000, max_seconds=1.0)
MEASURE = Budget(max_requests=200_000, max_seconds=4.0)
REGISTRATION_CONCURRENCY = 4
REGISTRATION_WARMUP = Budget(max_requests=REGISTRATION_CONCURRENCY, max_seconds=30.0)
REGISTRATION = Budget(max_requests=50, max_seconds=60.0)
HASHES = 20
RESULTS_FILE = Path(__file__).parent / "results" / "latest.json"
STACK_ENV = {
    # The bench's access token must outlive the run whatever the service's default.
    "WARMHOUSE_ACCESS_TOKEN_TTL_SECONDS": "3600",
    # Registrations through Envoy all come from one client address; the direct
    # ones name a client address each (bench/grpc_load.py).
    "WARMHOUSE_REGISTRATIONS_PER_CLIENT": str(10**9),
    **LOOP_ENV,
}

# Envoy's bucket for public writes must not cap the registration phase on a
# faster machine: the figure is the service's cost, not the limiter's.
RATE_LIMITS = replace(DEFAULT_RATE_LIMITS, writes=TokenBucket(per_second=100_000, burst=100_000))

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
            _running_stack(Path(data_dir)) as (stack, probe_host),
        ):
            # On uvloop, like the services: the lighter the client, the less it
            # caps the figures (Echo above all) on a machine it shares with them.
            report = uvloop.run(_measure(stack, probe_host, started_at, hashing))
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
def _running_stack(data_dir: Path) -> Iterator[tuple[Stack, ProbeHost]]:
    """The stack, then the probe host next to it; stopped in the reverse order."""
    _progress(f"starting the stack in {data_dir} ...")
    stack = Stack(data_dir, http_port=free_port(), extra_env=STACK_ENV, rate_limits=RATE_LIMITS)
    probe_host = ProbeHost(stack)
    try:
        with stack:
            try:
                _progress("starting the probe host ...")
                probe_host.start()
                yield stack, probe_host
            finally:
                # A second Ctrl-C must not cut the shutdown short and leave processes behind.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                _progress("stopping the probe host and the stack ...")
                probe_host.stop()
                if probe_host.exit_code:
                    _progress(
                        f"the probe host exited with status {probe_host.exit_code}; "
                        f"see {probe_host.log_file}"
                    )
    finally:
        # As root PostgreSQL's files may live outside the temporary data dir.
        stack.postgres.remove_data()


async def _measure(
    stack: Stack, probe_host: ProbeHost, started_at: datetime, hashing: HashFigures
) -> Report:
    envoy_account = await register_and_log_in(stack.base_url)
    http_load = await _http_load(stack.base_url)
    envoy_path = f"/users/{envoy_account.user_id}"
    envoy_headers = {"Authorization": envoy_account.authorization}
    _progress("setting up homes, rooms and a MAINTAINER through Envoy ...")
    estate = await set_up_estate(stack.base_url, OTHER_HOMES)
    async with (
        grpc.aio.insecure_channel(probe_host.address) as channel,
        grpc.aio.insecure_channel(stack.grpc_address(DEVICE.name)) as device_channel,
    ):
        await channel.channel_ready()
        await device_channel.channel_ready()
        devices = DeviceLoad(device_channel, CONCURRENCY)
        fleet, device_scaling = await grow_and_measure(
            estate, devices, stack.postgres.url(DEVICE.database), WARMUP, MEASURE, _progress
        )
        problems = await check_listing(stack.base_url, fleet)
        direct = DirectLoad(channel, CONCURRENCY)
        account = await direct.register_and_log_in()
        plans = [
            Plan("Echo (public, no work)", "echo", CONCURRENCY, direct.echo),
            Plan(
                "RawRead: 1 asyncpg fetchrow (token)",
                "raw_read",
                CONCURRENCY,
                lambda budget: direct.raw_read(account, budget),
            ),
            Plan(
                "GetUser direct gRPC",
                "direct_get_user",
                CONCURRENCY,
                lambda budget: direct.get_user(account, budget),
            ),
            Plan(
                "GET /users/{id} via Envoy (REST)",
                "envoy_get_user",
                CONCURRENCY,
                lambda budget: http_load.get(envoy_path, envoy_headers, budget),
            ),
            Plan("RawWrite: 2 INSERTs, 1 asyncpg tx", "raw_write", CONCURRENCY, direct.raw_write),
            Plan(
                "Write: users row + outbox row via the unit of work",
                "write",
                CONCURRENCY,
                direct.write,
            ),
            Plan(
                "CreateUser direct, hash stubbed",
                "direct_create_user",
                CONCURRENCY,
                direct.create_user,
            ),
            *read_plans(fleet, devices, http_load, CONCURRENCY),
        ]
        (
            echo,
            raw_read,
            get_user,
            envoy_get_user,
            raw_write,
            write,
            create_user,
            envoy_get_device,
            get_device,
            list_devices,
        ) = await measure_interleaved(plans, ROUNDS, WARMUP, MEASURE, _progress)
        stubbed = await direct.stubbed_hashes()
    # Every successful CreateUser on the probe host, the account's included.
    registered = create_user.succeeded + 1
    if stubbed < registered:
        problems.append(
            f"the probe host's stubbed password hash ran {stubbed} times for {registered} "
            "registrations: CreateUser was measured with the real hash; see HASHER_* in "
            "bench/probe_host.py"
        )
    registration = await measure_once(
        Plan(
            "POST /users via Envoy (argon2id)",
            "envoy_register",
            REGISTRATION_CONCURRENCY,
            lambda budget: register_users(stack.base_url, REGISTRATION_CONCURRENCY, budget),
        ),
        REGISTRATION_WARMUP,
        REGISTRATION,
        _progress,
    )
    report = Report(
        started_at=started_at,
        cpus=os.cpu_count() or 0,
        http_load=http_load.description,
        grpc_load=direct.description,
        schedule=(
            f"{ROUNDS} interleaved rounds of {WARMUP.max_seconds:g} s warm-up + "
            f"{MEASURE.max_seconds:g} s measured per phase; registration: "
            f"{REGISTRATION_WARMUP.max_requests} warm-up + {REGISTRATION.max_requests} measured"
        ),
        echo=echo,
        raw_read=raw_read,
        get_user=get_user,
        envoy_get_user=envoy_get_user,
        raw_write=raw_write,
        write=write,
        create_user=create_user,
        envoy_get_device=envoy_get_device,
        get_device=get_device,
        list_devices=list_devices,
        registration=registration,
        device_scaling=device_scaling,
        hashing=hashing,
        problems=tuple(problems),
    )
    return await add_device_loop(report, stack, _progress)


async def _http_load(base_url: str) -> HttpLoad:
    executable = None if os.environ.get("WARMHOUSE_BENCH_NO_WRK") else find_wrk()
    if executable is None:
        return PythonHttpLoad(base_url, CONCURRENCY)
    load = WrkLoad(executable, base_url, CONCURRENCY)
    await load.describe_version()
    return load


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
