"""`make run`: the whole stack in the foreground until Ctrl-C or SIGTERM.

WARMHOUSE_DATA_DIR (default <checkout>/.warmhouse) keeps the state between
runs; WARMHOUSE_HTTP_PORT (default 8080) is where REST clients connect;
WARMHOUSE_DEMO=1 (`make demo`) also seeds the demo home and runs its simulated
hardware (services/devstack/demo.py).
Exits non-zero when start-up fails or any process of the stack dies.
"""

import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from services.devstack import demo
from services.devstack.checkout import DEFAULT_DATA_DIR
from services.devstack.child_process import ChildProcess, StartupError
from services.devstack.stack import Stack

DEFAULT_HTTP_PORT = 8080
WATCH_INTERVAL_SECONDS = 0.5


def main() -> int:
    data_dir = Path(os.environ.get("WARMHOUSE_DATA_DIR") or DEFAULT_DATA_DIR)
    http_port = _http_port()
    with_demo = _demo_requested()
    _print_notices()
    stack = Stack(data_dir, http_port)
    # The demo's simulator, stopped before the stack it talks to.
    demo_processes: list[ChildProcess] = []
    # Both stop the stack the same way, even when started with SIGINT ignored
    # (as shells do for background jobs).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        print(f"starting WarmHouse in {stack.layout.root} ...", flush=True)
        stack.start()
        print(_describe(stack), flush=True)
        if with_demo:
            running_demo = demo.start(stack)
            demo_processes.append(running_demo.simulator)
            print(demo.describe(running_demo), flush=True)
        print("Ctrl-C stops everything.", flush=True)
        exited = _wait_for_exit(stack, demo_processes)
        print(
            f"\n{exited.name} exited with status {exited.exit_code}; stopping everything."
            f"\nLast lines of {exited.log_file}:\n{exited.log_tail()}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    except (StartupError, demo.DemoError) as error:
        print(f"start-up failed: {error}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for process in demo_processes:
            process.stop()
        stack.stop()


def _http_port() -> int:
    raw = os.environ.get("WARMHOUSE_HTTP_PORT") or str(DEFAULT_HTTP_PORT)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        sys.exit(f"WARMHOUSE_HTTP_PORT must be a TCP port number, got {raw!r}")
    return int(raw)


def _demo_requested() -> bool:
    raw = os.environ.get("WARMHOUSE_DEMO", "")
    if raw not in ("", "0", "1"):
        sys.exit(f"WARMHOUSE_DEMO must be 1 (seed the demo home) or 0, got {raw!r}")
    return raw == "1"


def _print_notices() -> None:
    """The stack's own notices, e.g. where PostgreSQL keeps its data, as console lines."""
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    notices = logging.getLogger("services.devstack")
    notices.addHandler(console)
    notices.setLevel(logging.INFO)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _wait_for_exit(stack: Stack, others: list[ChildProcess]) -> ChildProcess:
    while (exited := stack.first_exited() or _first_exited(others)) is None:
        time.sleep(WATCH_INTERVAL_SECONDS)
    return exited


def _first_exited(processes: list[ChildProcess]) -> ChildProcess | None:
    return next((process for process in processes if process.exit_code is not None), None)


def _describe(stack: Stack) -> str:
    lines = [
        "",
        f"WarmHouse is up (data in {stack.layout.root})",
        f"  REST             {stack.base_url}  (health: {stack.base_url}/healthz)",
        f"  Envoy admin      http://127.0.0.1:{stack.envoy_admin_port}",
        *(f"  {name + ' gRPC':<16} {stack.grpc_address(name)}" for name in stack.services),
        f"  PostgreSQL       {stack.postgres.url('<database>')}",
        f"  NATS JetStream   {stack.nats.address}",
        *_sandboxes(stack),
        "Logs:",
        *(f"  {process.name:<16} {process.log_file}" for process in stack.processes),
    ]
    return "\n".join(lines)


def _sandboxes(stack: Stack) -> list[str]:
    """Where the outside world's stand-ins listen, and how to read what they received."""
    lines = []
    if stack.payment_sandbox is not None:
        lines.append(f"  Payment sandbox  {stack.payment_sandbox.url}")
    sandbox = stack.message_sandbox
    if sandbox is not None:
        key_file = sandbox.sms_api_key_file
        lines += [
            f"  SMTP sink        127.0.0.1:{sandbox.smtp_port}",
            f"  SMS/push gateway {sandbox.http_url}",
            "  What people were sent (e-mail, sms or push):",
            f'    curl -H "Authorization: Bearer $(cat {key_file})" \\',
            f"      '{sandbox.http_url}/v1/sandbox/messages?channel=email'",
        ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
