"""Load on one REST endpoint from wrk (Debian package `wrk`), far lighter than Python.

A Lua script sets the request's headers and, in wrk's `done` hook, prints the
counters and latency percentiles as one machine-readable line, so no unit
parsing of wrk's human-readable report is needed.
"""

import asyncio
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from bench.closed_loop import REQUEST_TIMEOUT_SECONDS, Budget
from bench.figures import LoadFigures

_MARKER = "warmhouse-bench"
# Beyond the run's own duration: start-up, connection set-up and the report.
_EXTRA_SECONDS = 30.0
_DONE_HOOK = f"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("{_MARKER} %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(99.0)))
end
"""


class WrkError(RuntimeError):
    """wrk failed to run or printed no figures."""


def find_wrk() -> str | None:
    return shutil.which("wrk")


class WrkLoad:
    """One wrk thread holding `concurrency` keep-alive connections, one request in flight each.

    wrk is bounded by time only: a budget's `max_requests` does not apply.
    """

    def __init__(self, executable: str, base_url: str, concurrency: int) -> None:
        self.executable = executable
        self.base_url = base_url
        self.concurrency = concurrency
        self.description = f"wrk, 1 thread, {concurrency} connections"

    async def describe_version(self) -> None:
        """Put wrk's version (its `-v` banner's first line) into the description."""
        async with asyncio.timeout(_EXTRA_SECONDS):
            banner, _ = await _run([self.executable, "-v"])
        # e.g. "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer"
        first_line = banner.splitlines()[0] if banner.strip() else "wrk"
        version = first_line.split(" Copyright", 1)[0].strip()
        self.description = f"{version}, 1 thread, {self.concurrency} connections"

    async def get(self, path: str, headers: Mapping[str, str], budget: Budget) -> LoadFigures:
        seconds = max(1, round(budget.max_seconds))
        with tempfile.TemporaryDirectory(prefix="warmhouse-wrk-") as scratch:
            script = Path(scratch) / "get.lua"
            script.write_text(_script("GET", headers))
            argv = [
                self.executable,
                "--threads=1",
                f"--connections={self.concurrency}",
                f"--duration={seconds}s",
                f"--timeout={REQUEST_TIMEOUT_SECONDS:g}s",
                f"--script={script}",
                self.base_url + path,
            ]
            async with asyncio.timeout(seconds + _EXTRA_SECONDS):
                output, returncode = await _run(argv)
        if returncode != 0:
            raise WrkError(f"wrk exited with status {returncode}:\n{output}")
        return _parse(output)


def _script(method: str, headers: Mapping[str, str]) -> str:
    lines = [f"wrk.method = {_lua_string(method)}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + _DONE_HOOK


def _lua_string(value: str) -> str:
    if not value.isprintable() or not value.isascii():
        raise ValueError(f"only printable ASCII goes into the wrk script, got {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse(output: str) -> LoadFigures:
    line = next((ln for ln in output.splitlines() if ln.startswith(_MARKER + " ")), None)
    if line is None:
        raise WrkError(f"wrk printed no figures:\n{output}")
    answered, micros, connect, read, write, status, timeout, p50, p99 = (
        int(field) for field in line.split()[1:]
    )
    samples = [
        f"{count}x {what}"
        for what, count in (
            ("HTTP status >= 400", status),
            ("connect error", connect),
            ("read error", read),
            ("write error", write),
            ("timeout", timeout),
        )
        if count
    ]
    requests = answered - status
    return LoadFigures(
        requests=requests,
        errors=status + connect + read + write + timeout,
        seconds=micros / 1e6,
        # wrk's percentiles include failed responses; like the Python loop, show none
        # when nothing succeeded.
        p50_ms=p50 / 1000 if requests else None,
        p99_ms=p99 / 1000 if requests else None,
        error_samples=tuple(samples),
    )


async def _run(argv: list[str]) -> tuple[str, int]:
    """Run a command to completion: its output (stdout and stderr merged) and exit status.

    Cancelled (e.g. by a timeout), it kills the command before returning.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return output.decode(errors="replace"), await process.wait()
