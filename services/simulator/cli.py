"""`python -m services.simulator`: run simulated devices against an adapter.

    python -m services.simulator --adapter 127.0.0.1:50061 \\
        --device 3f0c...:s3cret:HEATER:living --device 9a1b...:s3cret:SENSOR:living \\
        --speed 60 --fault gas@30 --fault gas-clear@60 --duration 90 \\
        --state-dir /tmp/warmhouse-flash

Prints a status line every few seconds; Ctrl-C (or SIGTERM) stops cleanly.
Exits 2 on bad arguments, 1 when the adapter refused every device's credential.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import math
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.simulator.clock import SimClock
from services.simulator.device import DeviceType
from services.simulator.fleet import DeviceSpec, Fault, Fleet

# Device ids are UUIDs and secrets 43 characters; far longer is a mistake.
MAX_ID_LENGTH = 128
MAX_SECRET_LENGTH = 128
MAX_ROOM_LENGTH = 100
MAX_DEVICES_FILE_BYTES = 64 * 1024 * 1024
DEFAULT_ROOM = "home"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
TYPES = ", ".join(DeviceType)


@dataclass(frozen=True)
class ScheduledFault:
    fault: Fault
    after_seconds: float
    device_id: str | None = None  # None: every device


def adapter_address(text: str) -> str:
    host, colon, port = text.rpartition(":")
    if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
        raise argparse.ArgumentTypeError("must be HOST:PORT")
    return text


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def finite_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError("must be a finite number")
    return value


def speed_factor(text: str) -> float:
    value = finite_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_count(text: str) -> int:
    if not (text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError("must be a whole number above 0")
    return int(text)


def device_spec(id_: str, secret: str, type_: str, room: str) -> DeviceSpec:
    """A device from its parts, or ValueError saying which part is wrong."""
    if not 0 < len(id_) <= MAX_ID_LENGTH:
        raise ValueError(f"the device id must be 1 to {MAX_ID_LENGTH} characters")
    if not 0 < len(secret) <= MAX_SECRET_LENGTH:
        raise ValueError(f"the secret must be 1 to {MAX_SECRET_LENGTH} characters")
    if type_ not in DeviceType.__members__:
        raise ValueError(f"the type must be one of {TYPES}")
    if not 0 < len(room) <= MAX_ROOM_LENGTH:
        raise ValueError(f"the room must be 1 to {MAX_ROOM_LENGTH} characters")
    return DeviceSpec(id_, secret, DeviceType(type_), room)


def device_argument(text: str) -> DeviceSpec:
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError("must be ID:SECRET:TYPE or ID:SECRET:TYPE:ROOM")
    room = parts[3] if len(parts) == 4 else DEFAULT_ROOM
    try:
        return device_spec(parts[0], parts[1], parts[2], room)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def fault_argument(text: str) -> ScheduledFault:
    kind, at, when = text.partition("@")
    seconds, _, device_id = when.partition(":")
    if not at or kind not in set(Fault):
        kinds = ", ".join(Fault)
        raise argparse.ArgumentTypeError(f"must be KIND@SECONDS[:DEVICE_ID], KIND one of {kinds}")
    try:
        after = float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError("SECONDS must be a number") from None
    if not (math.isfinite(after) and after >= 0):
        raise argparse.ArgumentTypeError("SECONDS must be 0 or more")
    return ScheduledFault(Fault(kind), after, device_id or None)


def load_devices(path: Path) -> list[DeviceSpec]:
    """The devices of a JSON file: a list of {"deviceId", "deviceSecret", "type", "room"}.
    ValueError (or OSError) with a message fit for the command line."""
    if path.stat().st_size > MAX_DEVICES_FILE_BYTES:
        raise ValueError(f"larger than {MAX_DEVICES_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not a JSON file") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError("must hold a non-empty JSON list of devices")
    return [_device_entry(number, entry) for number, entry in enumerate(entries, start=1)]


# What an entry of a devices file holds; "room" may be left out.
_ENTRY_FIELDS = ("deviceId", "deviceSecret", "type", "room")


def _device_entry(number: int, entry: Any) -> DeviceSpec:
    if not isinstance(entry, dict):
        raise ValueError(f"entry {number} is not an object")
    fields: dict[str, str] = {}
    for name in _ENTRY_FIELDS:
        value = entry.get(name, DEFAULT_ROOM if name == "room" else None)
        if not isinstance(value, str):
            raise ValueError(f"entry {number}: {name} must be a string")
        fields[name] = value
    try:
        return device_spec(
            fields["deviceId"], fields["deviceSecret"], fields["type"], fields["room"]
        )
    except ValueError as error:
        raise ValueError(f"entry {number}: {error}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.simulator",
        description="Simulated WarmHouse hardware holding DeviceAdapterService.Connect streams.",
    )
    parser.add_argument("--adapter", required=True, type=adapter_address, metavar="HOST:PORT")
    devices = parser.add_mutually_exclusive_group(required=True)
    devices.add_argument(
        "--device",
        action="append",
        type=device_argument,
        metavar="ID:SECRET:TYPE[:ROOM]",
        help=f"a device; TYPE one of {TYPES}; repeat for more",
    )
    devices.add_argument(
        "--devices-file",
        type=Path,
        metavar="FILE.json",
        help='a JSON list of {"deviceId", "deviceSecret", "type", "room"}',
    )
    parser.add_argument("--telemetry-interval", type=positive_seconds, default=5.0)
    parser.add_argument(
        "--speed", type=speed_factor, default=60.0, help="simulated seconds per real second"
    )
    parser.add_argument("--outdoor", type=finite_number, default=0.0, help="°C outside")
    parser.add_argument(
        "--initial", type=finite_number, default=15.0, help="°C indoors at the start"
    )
    parser.add_argument("--duration", type=positive_seconds, help="seconds; default: until Ctrl-C")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=fault_argument,
        metavar="KIND@SECONDS[:DEVICE_ID]",
        help=f"switch a fault on or off SECONDS after start; KIND one of {', '.join(Fault)}",
    )
    parser.add_argument("--devices-per-channel", type=positive_count, default=100)
    parser.add_argument(
        "--samples-per-frame",
        type=positive_count,
        default=1,
        help="samples sent together, each taken a telemetry interval apart (at most 100)",
    )
    parser.add_argument(
        "--ramp", type=finite_number, default=0.0, help="spread first connections over seconds"
    )
    parser.add_argument("--backoff-cap", type=positive_seconds, default=30.0)
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="keep each heating device's plan in a file here, across restarts",
    )
    parser.add_argument("--status-every", type=positive_seconds, default=5.0)
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked as a whole; exits 2 with a message on anything wrong."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.devices_file is not None:
        try:
            args.device = load_devices(args.devices_file)
        except (OSError, ValueError) as error:
            parser.error(f"--devices-file: {error}")
    ids = [spec.device_id for spec in args.device]
    if len(set(ids)) != len(ids):
        parser.error("a device id appears twice")
    unknown = {f.device_id for f in args.fault if f.device_id is not None} - set(ids)
    if unknown:
        parser.error("--fault names a device that is not simulated")
    if args.ramp < 0:
        parser.error("--ramp must be 0 or more")
    return args


async def run(args: argparse.Namespace) -> int:
    fleet = Fleet(
        args.adapter,
        args.device,
        clock=SimClock(speed=args.speed),
        outdoor_celsius=args.outdoor,
        initial_celsius=args.initial,
        telemetry_interval=args.telemetry_interval,
        devices_per_channel=args.devices_per_channel,
        backoff_cap=args.backoff_cap,
        ramp_seconds=args.ramp,
        samples_per_frame=args.samples_per_frame,
        state_dir=args.state_dir,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stopping.set)
    helpers: list[asyncio.Task[None]] = []
    try:
        await fleet.start()
        helpers += [
            asyncio.create_task(_report(fleet, args.status_every)),
            asyncio.create_task(_watch_refusals(fleet, stopping)),
            *(asyncio.create_task(_inflict_later(fleet, fault)) for fault in args.fault),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), args.duration)
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await fleet.stop()
        print(fleet.status_line(), flush=True)
    if fleet.gave_up_count() == len(fleet.devices):
        print("the adapter refused every device's credential", file=sys.stderr)
        return 1
    return 0


async def _report(fleet: Fleet, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        print(fleet.status_line(), flush=True)


async def _watch_refusals(fleet: Fleet, stopping: asyncio.Event) -> None:
    """Nothing left to simulate once every device gave up."""
    while True:
        await asyncio.sleep(0.5)
        if fleet.gave_up_count() == len(fleet.devices):
            stopping.set()
            return


async def _inflict_later(fleet: Fleet, scheduled: ScheduledFault) -> None:
    await asyncio.sleep(scheduled.after_seconds)
    targets = None if scheduled.device_id is None else [scheduled.device_id]
    fleet.inflict(scheduled.fault, targets)
    print(f"fault {scheduled.fault} on {scheduled.device_id or 'every device'}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(run(args))
