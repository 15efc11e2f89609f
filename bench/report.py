"""The run's figures: a table for people, JSON for tools.

A phase is measured in one or more rounds, each a warm-up then a measurement;
the table shows, per phase, the median over its rounds. Ratios are those of
requests/s (or of a latency percentile where named): for phases measured round
for round side by side, the median of the per-round ratios, which cancels
drift that a ratio of medians would keep.
"""

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.argon2_cost import HashFigures
from bench.figures import LoadFigures, ratio

# Targets of the hardening issue: hot paths are judged by these ratios.
GET_USER_OVER_ECHO_TARGET = 0.4
# A state change and its outbox row through the runtime's write path (the
# unit of work), against the raw asyncpg transaction doing the same INSERTs.
WRITE_OVER_RAW_WRITE_TARGET = 0.8
# Ratios shown without a target, and why.
UNTARGETED = {
    "get_user_over_raw_read": "the service's cost beyond one fetchrow",
    "create_user_over_raw_write": "includes the registration-throttle transaction",
    "get_device_over_echo": "the Device service against the probe host's Echo",
}
# The table's first column is at least this wide, and as wide as the longest label.
LABEL_WIDTH = 36


@dataclass(frozen=True)
class Round:
    warmup: LoadFigures
    measured: LoadFigures


@dataclass(frozen=True)
class Phase:
    # Row label in the table; `key` names it in the JSON.
    label: str
    key: str
    concurrency: int
    rounds: tuple[Round, ...]

    @property
    def errors(self) -> int:
        return sum(r.warmup.errors + r.measured.errors for r in self.rounds)

    @property
    def requests(self) -> int:
        """Successful measured requests, over every round."""
        return sum(r.measured.requests for r in self.rounds)

    @property
    def succeeded(self) -> int:
        """Successful requests, warm-ups included."""
        return sum(r.warmup.requests + r.measured.requests for r in self.rounds)

    @property
    def throughputs(self) -> list[float]:
        return [r.measured.requests_per_second for r in self.rounds]

    @property
    def requests_per_second(self) -> float:
        return statistics.median(self.throughputs) if self.rounds else 0.0

    @property
    def p50_ms(self) -> float | None:
        return _median([r.measured.p50_ms for r in self.rounds])

    @property
    def p99_ms(self) -> float | None:
        return _median([r.measured.p99_ms for r in self.rounds])

    @property
    def spread(self) -> float | None:
        """(highest - lowest) / median requests/s over the rounds; None for one round."""
        if len(self.rounds) < 2:
            return None
        return ratio(max(self.throughputs) - min(self.throughputs), self.requests_per_second)

    def error_lines(self) -> list[str]:
        lines = []
        for number, measured_round in enumerate(self.rounds, 1):
            where = f"round {number}, " if len(self.rounds) > 1 else ""
            for stage, figures in (
                ("warm-up", measured_round.warmup),
                ("measured", measured_round.measured),
            ):
                lines += [f"  {self.label} ({where}{stage}): {s}" for s in figures.error_samples]
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "requests_per_second": round(self.requests_per_second, 1),
            "p50_ms": _rounded(self.p50_ms),
            "p99_ms": _rounded(self.p99_ms),
            "spread": _rounded(self.spread),
            "rounds": [
                {"warmup": r.warmup.as_json(), "measured": r.measured.as_json()}
                for r in self.rounds
            ],
        }


def throughput_ratio(phase: Phase, baseline: Phase) -> float | None:
    """`phase`'s requests/s over `baseline`'s: median of the per-round ratios when
    both ran the same number of rounds, else the ratio of their medians."""
    if len(phase.rounds) == len(baseline.rounds) > 1:
        return _median(
            [
                ratio(ours, theirs)
                for ours, theirs in zip(phase.throughputs, baseline.throughputs, strict=True)
            ]
        )
    return ratio(phase.requests_per_second, baseline.requests_per_second)


def p50_ratio(phase: Phase, baseline: Phase) -> float | None:
    if len(phase.rounds) == len(baseline.rounds) > 1:
        return _median(
            [
                ratio(ours.measured.p50_ms, theirs.measured.p50_ms)
                for ours, theirs in zip(phase.rounds, baseline.rounds, strict=True)
            ]
        )
    return ratio(phase.p50_ms, baseline.p50_ms)


def p99_ratio(phase: Phase, baseline: Phase) -> float | None:
    if len(phase.rounds) == len(baseline.rounds) > 1:
        return _median(
            [
                ratio(ours.measured.p99_ms, theirs.measured.p99_ms)
                for ours, theirs in zip(phase.rounds, baseline.rounds, strict=True)
            ]
        )
    return ratio(phase.p99_ms, baseline.p99_ms)


@dataclass(frozen=True)
class DeviceScaling:
    """GetDevice direct as the devices table grows, and the registrations that grew it.

    Each measured in one round: the table only grows, so the two sizes cannot
    take turns. The first `small_table_devices` registrations are the
    registration phase's warm-up.
    """

    registration: Phase
    small_table: Phase
    # At the large size: the same devices as `small_table`, then any device of the table.
    large_table_same_home: Phase
    large_table: Phase
    small_table_devices: int
    large_table_devices: int
    # From the last registration until the Device service's outbox held no
    # unpublished event; None when it still did at the end of the wait.
    outbox_drain_seconds: float | None

    @property
    def phases(self) -> tuple[Phase, ...]:
        return (self.registration, self.small_table, self.large_table_same_home, self.large_table)

    def as_json(self) -> dict[str, Any]:
        return {
            "small_table_devices": self.small_table_devices,
            "large_table_devices": self.large_table_devices,
            "outbox_drain_seconds": _rounded(self.outbox_drain_seconds),
        }


@dataclass(frozen=True)
class Report:
    started_at: datetime
    cpus: int
    http_load: str
    grpc_load: str
    schedule: str
    echo: Phase
    raw_read: Phase
    get_user: Phase
    envoy_get_user: Phase
    raw_write: Phase
    write: Phase
    create_user: Phase
    # The Device service's read path, interleaved with the phases above.
    envoy_get_device: Phase
    get_device: Phase
    list_devices: Phase
    registration: Phase
    device_scaling: DeviceScaling
    hashing: HashFigures
    # What makes the figures wrong other than a failed request (e.g. the hash
    # stub not used); each one fails the run like a request error.
    problems: tuple[str, ...] = ()

    @property
    def phases(self) -> tuple[Phase, ...]:
        return (
            self.echo,
            self.raw_read,
            self.get_user,
            self.envoy_get_user,
            self.raw_write,
            self.write,
            self.create_user,
            self.envoy_get_device,
            self.get_device,
            self.list_devices,
            self.registration,
            *self.device_scaling.phases,
        )

    @property
    def errors(self) -> int:
        return sum(phase.errors for phase in self.phases) + len(self.problems)

    @property
    def ratios(self) -> dict[str, float | None]:
        scaling = self.device_scaling
        small = scaling.small_table
        envoy_device, device = self.envoy_get_device, self.get_device
        return {
            "get_user_over_echo": throughput_ratio(self.get_user, self.echo),
            "get_user_over_raw_read": throughput_ratio(self.get_user, self.raw_read),
            "write_over_raw_write": throughput_ratio(self.write, self.raw_write),
            "create_user_over_raw_write": throughput_ratio(self.create_user, self.raw_write),
            "envoy_over_direct_get_user": throughput_ratio(self.envoy_get_user, self.get_user),
            "envoy_over_direct_get_user_p50": p50_ratio(self.envoy_get_user, self.get_user),
            "get_device_over_echo": throughput_ratio(device, self.echo),
            "envoy_over_direct_get_device": throughput_ratio(envoy_device, device),
            "envoy_over_direct_get_device_p50": p50_ratio(envoy_device, device),
            "envoy_over_direct_get_device_p99": p99_ratio(envoy_device, device),
            "get_device_large_over_small_table_p99": p99_ratio(scaling.large_table, small),
            "get_device_large_over_small_table_p50": p50_ratio(scaling.large_table, small),
            "get_device_large_over_small_table_same_home_p99": p99_ratio(
                scaling.large_table_same_home, small
            ),
        }

    def _columns(self, phase: Phase) -> tuple[float | None, float | None]:
        """The row's "x echo" and "x raw" figures; only for phases of the probe host."""
        raw_baselines = {
            self.get_user.key: self.raw_read,
            self.write.key: self.raw_write,
            self.create_user.key: self.raw_write,
        }
        probe_host = {self.raw_read.key, self.raw_write.key, *raw_baselines}
        over_echo = throughput_ratio(phase, self.echo) if phase.key in probe_host else None
        raw = raw_baselines.get(phase.key)
        return over_echo, None if raw is None else throughput_ratio(phase, raw)

    @property
    def _label_width(self) -> int:
        return max(LABEL_WIDTH, *(len(phase.label) for phase in self.phases))

    def table(self) -> str:
        width = self._label_width
        header = (
            f"{'':<{width}} {'conc':>4} {'requests':>9} {'errors':>6} {'req/s':>9} {'range':>6} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'x echo':>7} {'x raw':>7}"
        )
        ratios = self.ratios
        hashing = self.hashing
        scaling = self.device_scaling
        lines = [
            f"WarmHouse bench, {self.started_at:%Y-%m-%d %H:%M:%S %Z}, {self.cpus} CPUs",
            f"HTTP load: {self.http_load}",
            f"gRPC load: {self.grpc_load}",
            f"Schedule: {self.schedule}",
            "",
            header,
            "-" * len(header),
            *(self._row(phase) for phase in self.phases),
            "",
            "req/s, p50, p99: median over the rounds; range: (max - min) / median req/s.",
            "x echo: req/s over Echo's; x raw: GetUser's over RawRead's, Write's and",
            "CreateUser's over RawWrite's; each the median of the per-round ratios. Echo,",
            "RawRead, GetUser, RawWrite, Write and CreateUser are served by one probe host:",
            "the User service on the shared runtime plus bench-only probes. Envoy's phases",
            "and the Device phases go to the stack's services. RegisterDevice and GetDevice",
            "by table size run one round each (the table only grows); the latter draws a",
            "random device each request.",
            "",
            "Targets (ratios from this run; absolute figures drift about 10 % between runs):",
            _target(
                "GetUser direct over Echo",
                ratios["get_user_over_echo"],
                GET_USER_OVER_ECHO_TARGET,
            ),
            _target(
                "Write (unit of work) over RawWrite",
                ratios["write_over_raw_write"],
                WRITE_OVER_RAW_WRITE_TARGET,
            ),
            _untargeted(
                "CreateUser (hash stubbed) over RawWrite", ratios, "create_user_over_raw_write"
            ),
            _untargeted("GetUser direct over RawRead", ratios, "get_user_over_raw_read"),
            f"  Envoy / direct GetUser: throughput {_times(ratios['envoy_over_direct_get_user'])}, "
            f"p50 latency {_times(ratios['envoy_over_direct_get_user_p50'])}",
            "Device service, as a MAINTAINER who did not create the home:",
            _untargeted("GetDevice direct over Echo", ratios, "get_device_over_echo"),
            "  Envoy / direct GetDevice: "
            f"throughput {_times(ratios['envoy_over_direct_get_device'])}, "
            f"p50 latency {_times(ratios['envoy_over_direct_get_device_p50'])}, "
            f"p99 latency {_times(ratios['envoy_over_direct_get_device_p99'])}",
            f"  GetDevice direct at {scaling.large_table_devices} devices over at "
            f"{scaling.small_table_devices}: "
            f"p99 {_times(ratios['get_device_large_over_small_table_p99'])}, "
            f"p50 {_times(ratios['get_device_large_over_small_table_p50'])}",
            f"    (the measured home's same {scaling.small_table_devices} devices: "
            f"p99 {_times(ratios['get_device_large_over_small_table_same_home_p99'])})",
            f"  RegisterDevice: {_registrations(scaling)}; the outbox "
            f"{_drained(scaling.outbox_drain_seconds)}",
            f"argon2id hash_password in-process ({hashing.parameters}), {hashing.hashes} hashes "
            f"one at a time: mean {hashing.mean_ms:.1f} ms "
            f"(min {hashing.min_ms:.1f}, max {hashing.max_ms:.1f})",
            f"Errors: {self.errors}",
        ]
        for phase in self.phases:
            lines += phase.error_lines()
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)

    def _row(self, phase: Phase) -> str:
        over_echo, over_raw = self._columns(phase)
        spread = "" if phase.spread is None else f"{phase.spread * 100:.0f}%"
        return (
            f"{phase.label:<{self._label_width}} {phase.concurrency:>4} "
            f"{phase.requests:>9} {phase.errors:>6} "
            f"{phase.requests_per_second:>9.1f} {spread:>6} "
            f"{_ms(phase.p50_ms):>8} {_ms(phase.p99_ms):>8} "
            f"{_column(over_echo):>7} {_column(over_raw):>7}"
        ).rstrip()

    def as_json(self) -> dict[str, Any]:
        ratios = self.ratios
        return {
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "cpus": self.cpus,
            "http_load": self.http_load,
            "grpc_load": self.grpc_load,
            "schedule": self.schedule,
            "phases": {phase.key: phase.as_json() for phase in self.phases},
            "ratios": {name: _rounded(value) for name, value in ratios.items()},
            "targets": {
                "get_user_over_echo": {
                    "target": GET_USER_OVER_ECHO_TARGET,
                    "met": _met(ratios["get_user_over_echo"], GET_USER_OVER_ECHO_TARGET),
                },
                "write_over_raw_write": {
                    "target": WRITE_OVER_RAW_WRITE_TARGET,
                    "met": _met(ratios["write_over_raw_write"], WRITE_OVER_RAW_WRITE_TARGET),
                },
            },
            "untargeted": dict(UNTARGETED),
            "device_scaling": self.device_scaling.as_json(),
            "argon2id_hash": self.hashing.as_json(),
            "errors": self.errors,
            "problems": list(self.problems),
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


def _target(what: str, value: float | None, target: float) -> str:
    met = _met(value, target)
    verdict = "n/a (no figure)" if met is None else ("met" if met else "NOT met")
    return f"  {what}: {_times(value)}, target >= {target:.2f}x: {verdict}"


def _untargeted(what: str, ratios: dict[str, float | None], name: str) -> str:
    return f"  {what}: {_times(ratios[name])} (no target: {UNTARGETED[name]})"


def _registrations(scaling: DeviceScaling) -> str:
    registration = scaling.registration
    seconds = sum(r.measured.seconds for r in registration.rounds)
    warmed = sum(r.warmup.requests for r in registration.rounds)
    return (
        f"{registration.requests} after {warmed} warm-up "
        f"in {seconds:.1f} s at {registration.concurrency} in flight"
    )


def _drained(seconds: float | None) -> str:
    if seconds is None:
        return "still held unpublished events at the end of the wait"
    return f"drained {seconds:.1f} s after the last"


def _met(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _column(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
