"""The demo home (`make demo`): a home seeded through the REST API, with simulated hardware in it.

An owner; "Demo home" with a living room and a bedroom, a HEATER and a SENSOR in
each; the heaters in AUTO on a weekly schedule with open-window detection. Then
the hardware simulator runs the four devices as a child process, on a clock 60
times faster than real (a simulated day every 24 minutes), and opens the living
room's window for a while so the detection shows.

What it made (ids, device secrets, the owner's credentials) stays in the demo
directory inside the data directory, and is used again while it still works:
the owner can log in and every device exists. Otherwise a fresh home is made.
"""

import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from services.devstack.child_process import ChildProcess
from services.devstack.stack import Stack

DEMO_EMAIL = "demo@warmhouse.example"
DEMO_PASSWORD = "warm and cosy at home"
DEMO_PHONE = "+15550100000"
HOME_NAME = "Demo home"
DEVICE_ADAPTER = "device-adapter"

SPEED = 60  # simulated seconds per real second
INITIAL_CELSIUS = 15.0
OUTDOOR_CELSIUS = 0.0
TELEMETRY_SECONDS = 5.0
# Real seconds after the simulator starts; the living room's window is open in between.
WINDOW_OPENS_AFTER = 180
WINDOW_CLOSES_AFTER = 240
SIMULATOR_READY_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 30.0

# (start "HH:MM", °C), the same every day; the bedroom is kept a bit cooler.
LIVING_ROOM_DAY = (("06:30", 21.0), ("09:00", 17.0), ("17:00", 21.5), ("23:00", 18.0))
BEDROOM_DAY = (("06:30", 20.0), ("09:00", 16.0), ("17:00", 19.0), ("23:00", 17.0))
ROOMS = {"living": ("Living room", LIVING_ROOM_DAY), "bedroom": ("Bedroom", BEDROOM_DAY)}
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
# The pause is an hour on the devices' clock: the real minute the window stays open,
# so the heater reports WINDOW_OPEN all the while.
WINDOW_DETECTION = {"enabled": True, "dropCelsius": 1.5, "withinSeconds": 300, "pauseSeconds": 3600}


class DemoError(RuntimeError):
    """The demo home could not be made: a REST call answered what it should not."""


@dataclass(frozen=True)
class DemoDevice:
    device_id: str
    device_secret: str
    device_type: str  # HEATER or SENSOR
    room: str  # a key of ROOMS


@dataclass(frozen=True)
class DemoHome:
    email: str
    password: str
    user_id: str
    home_id: str
    room_ids: dict[str, str]  # by key of ROOMS
    devices: tuple[DemoDevice, ...]

    def device(self, room: str, device_type: str) -> DemoDevice:
        return next(d for d in self.devices if (d.room, d.device_type) == (room, device_type))


@dataclass(frozen=True)
class RunningDemo:
    home: DemoHome
    directory: Path
    base_url: str
    simulator: ChildProcess


def weekly_schedule(day: tuple[tuple[str, float], ...]) -> dict[str, Any]:
    """The same slots on every day of the week, as the REST API takes a schedule."""
    slots = [
        {"day": weekday, "startTime": start, "targetCelsius": celsius}
        for weekday in DAYS
        for start, celsius in day
    ]
    return {"slots": slots}


def start(stack: Stack) -> RunningDemo:
    """Seed (or reuse) the demo home on a started stack, then run its hardware."""
    demo_dir = stack.layout.root / "demo"
    home, token = prepare(stack.base_url, demo_dir)
    simulator = start_simulator(
        home,
        token,
        stack.base_url,
        stack.grpc_address(DEVICE_ADAPTER),
        demo_dir,
        stack.layout.service_logs / "simulator.log",
    )
    return RunningDemo(home, demo_dir, stack.base_url, simulator)


def prepare(base_url: str, demo_dir: Path, email: str = DEMO_EMAIL) -> tuple[DemoHome, str]:
    """The home the demo directory holds if it still works, else a new one (saved there);
    with an access token of its owner."""
    state_file = demo_dir / "demo.json"
    saved = _load(state_file)
    if saved is not None:
        token = _token_if_usable(base_url, saved)
        if token is not None:
            return saved, token
    home, token = _create(base_url, email)
    _write_private(state_file, json.dumps(asdict(home), indent=2))
    return home, token


def simulator_argv(home: DemoHome, adapter: str, demo_dir: Path) -> list[str]:
    living_heater = home.device("living", "HEATER").device_id
    return [
        sys.executable,
        "-m",
        "services.simulator",
        "--adapter",
        adapter,
        "--devices-file",
        str(demo_dir / "devices.json"),
        "--state-dir",
        str(demo_dir / "flash"),
        "--speed",
        str(SPEED),
        "--initial",
        str(INITIAL_CELSIUS),
        "--outdoor",
        str(OUTDOOR_CELSIUS),
        "--telemetry-interval",
        str(TELEMETRY_SECONDS),
        "--fault",
        f"window-open@{WINDOW_OPENS_AFTER}:{living_heater}",
        "--fault",
        f"window-close@{WINDOW_CLOSES_AFTER}:{living_heater}",
    ]


def start_simulator(
    home: DemoHome, token: str, base_url: str, adapter: str, demo_dir: Path, log_file: Path
) -> ChildProcess:
    """The simulator for the home's devices, started: every device ONLINE. Stop it by its
    ChildProcess (SIGTERM to its PID)."""
    devices = [
        {
            "deviceId": d.device_id,
            "deviceSecret": d.device_secret,
            "type": d.device_type,
            "room": d.room,
        }
        for d in home.devices
    ]
    _write_private(demo_dir / "devices.json", json.dumps(devices, indent=2))
    simulator = ChildProcess("simulator", log_file)
    simulator.start(
        simulator_argv(home, adapter, demo_dir),
        is_ready=lambda: _all_online(base_url, token, home),
        timeout=SIMULATOR_READY_SECONDS,
    )
    return simulator


def describe(demo: RunningDemo) -> str:
    """Who to log in as, the ids, and curl commands to try, for the console."""
    home, base_url = demo.home, demo.base_url
    heaters = {room: home.device(room, "HEATER").device_id for room in ROOMS}
    sensors = {room: home.device(room, "SENSOR").device_id for room in ROOMS}
    auth = '-H "Authorization: Bearer $TOKEN"'
    login = json.dumps({"email": home.email, "password": home.password})
    heater = heaters["living"]
    lines = [
        "",
        f"Demo home (kept in {demo.directory}; simulator log {demo.simulator.log_file})",
        f"  owner            {home.email} / {home.password}",
        f"  home             {home.home_id}",
        *(
            f"  {name.lower():<16} room {home.room_ids[room]}\n"
            f"                   heater {heaters[room]}  sensor {sensors[room]}"
            for room, (name, _) in ROOMS.items()
        ),
        f"  simulated clock  {SPEED}x real time (a day every {24 * 60 // SPEED} min);"
        f" the living-room window opens {WINDOW_OPENS_AFTER // 60} min in,"
        f" closes {WINDOW_CLOSES_AFTER / 60:g} min in",
        "Try (a token lasts 5 minutes: log in again after):",
        f"  TOKEN=$(curl -s {base_url}/auth/login --json '{login}' \\",
        f"    | {_print_field('accessToken')})",
        *(f"  curl -s {base_url}/devices/{heaters[room]}/heating {auth}" for room in ROOMS),
        f"  curl -s {base_url}/devices/{sensors['living']} {auth}",
        f"  curl -s {base_url}/devices/{sensors['living']}/readings {auth}",
        f"  VERSION=$(curl -s {base_url}/devices/{heater}/heating {auth} \\",
        f"    | {_print_field('desired', 'plan', 'version')})",
        f"  curl -s -X PATCH {base_url}/devices/{heater}/heating/desired {auth} \\",
        '    --json "{\\"version\\":$VERSION,\\"mode\\":\\"HEAT\\",\\"targetCelsius\\":23}"',
    ]
    return "\n".join(lines)


def _print_field(*path: str) -> str:
    """A shell filter printing one field of a JSON answer (jq may not be installed)."""
    keys = "".join(f'["{key}"]' for key in path)
    return f"python3 -c 'import json,sys; print(json.load(sys.stdin){keys})'"


# Seeding.


def _create(base_url: str, email: str) -> tuple[DemoHome, str]:
    user_id, token = _owner(base_url, email)
    home_id = _call(base_url, "POST", "/spaces", {"name": HOME_NAME}, token)["spaceId"]
    room_ids: dict[str, str] = {}
    devices: list[DemoDevice] = []
    for room, (name, day) in ROOMS.items():
        body = {"name": name, "parentSpaceId": home_id}
        room_ids[room] = _call(base_url, "POST", "/spaces", body, token)["spaceId"]
        heater = _register(base_url, token, room, room_ids[room], "HEATER")
        sensor = _register(base_url, token, room, room_ids[room], "SENSOR")
        _follow_schedule(base_url, token, heater.device_id, day)
        devices += [heater, sensor]
    home = DemoHome(email, DEMO_PASSWORD, user_id, home_id, room_ids, tuple(devices))
    return home, token


def _owner(base_url: str, email: str) -> tuple[str, str]:
    """(user id, access token) of the demo's owner, registered unless it already was."""
    account = {"email": email, "password": DEMO_PASSWORD, "phone": DEMO_PHONE}
    _call(base_url, "POST", "/users", account, ok=(200, 409))  # 409: registered before
    session = _login(base_url, email, DEMO_PASSWORD)
    if session is None:
        raise DemoError(
            f"{email} cannot log in with the demo's password (was it changed?):"
            " start with another WARMHOUSE_DATA_DIR"
        )
    return session


def _register(base_url: str, token: str, room: str, room_id: str, device_type: str) -> DemoDevice:
    name = f"{ROOMS[room][0]} {device_type.lower()}"
    body = {"spaceId": room_id, "type": device_type, "name": name}
    registered = _call(base_url, "POST", "/devices", body, token)
    return DemoDevice(
        registered["device"]["deviceId"], registered["deviceSecret"], device_type, room
    )


def _follow_schedule(
    base_url: str, token: str, heater_id: str, day: tuple[tuple[str, float], ...]
) -> None:
    heating = _call(base_url, "GET", f"/devices/{heater_id}/heating", token=token)
    change = {
        "version": heating["desired"]["plan"]["version"],
        "mode": "AUTO",
        "schedule": weekly_schedule(day),
        "timeZone": "UTC",
        "windowDetection": WINDOW_DETECTION,
    }
    _call(base_url, "PATCH", f"/devices/{heater_id}/heating/desired", change, token)


def _token_if_usable(base_url: str, home: DemoHome) -> str | None:
    """An access token of the home's owner when the owner can log in and every device exists."""
    session = _login(base_url, home.email, home.password)
    if session is None:
        return None
    _, token = session
    for device in home.devices:
        status, _ = _request(base_url, "GET", f"/devices/{device.device_id}", token=token)
        if status == 404:  # retired, or the database is not the one it was made in
            return None
        if status != 200:
            raise DemoError(f"GET /devices/{device.device_id} answered {status}")
    return token


def _login(base_url: str, email: str, password: str) -> tuple[str, str] | None:
    """(user id, access token), or None when the credentials are refused (401)."""
    body = {"email": email, "password": password}
    session = _call(base_url, "POST", "/auth/login", body, ok=(200, 401))
    if "accessToken" not in session:
        return None
    return str(session["userId"]), str(session["accessToken"])


def _all_online(base_url: str, token: str, home: DemoHome) -> bool:
    devices = _call(base_url, "GET", f"/spaces/{home.home_id}/devices?pageSize=100", token=token)
    online = {d["deviceId"] for d in devices.get("devices", []) if d["status"] == "ONLINE"}
    return all(device.device_id in online for device in home.devices)


# Files and REST.


def _load(state_file: Path) -> DemoHome | None:
    """The saved home; None when there is none or it cannot be read."""
    try:
        saved = json.loads(state_file.read_text(encoding="utf-8"))
        devices = tuple(DemoDevice(**device) for device in saved.pop("devices"))
        return DemoHome(**saved, devices=devices)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _write_private(path: Path, text: str) -> None:
    """Device secrets and a password: only the file's owner may read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)


def _call(
    base_url: str,
    method: str,
    path: str,
    body: object = None,
    token: str | None = None,
    ok: tuple[int, ...] = (200,),
) -> Any:
    """The JSON answer of a call that must succeed; DemoError otherwise."""
    status, answer = _request(base_url, method, path, body, token)
    if status not in ok:
        raise DemoError(f"{method} {path.split('?')[0]} answered {status}: {answer}")
    return answer


def _request(
    base_url: str, method: str, path: str, body: object = None, token: str | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    return status, json.loads(payload) if payload else None
