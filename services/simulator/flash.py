"""A device's storage for its heating plan, so a restarted device follows its plan before
the cloud is back. A file per device; written whole or not at all (temp file, then rename).

A simulator's flash, not a database: no fsync (a plan lost with the host's power is
fetched again from the cloud), and the blocking writes run on the event loop, which a
few hundred bytes per plan change can afford.
"""

import contextlib
import hashlib
import logging
import os
import re
from pathlib import Path

from google.protobuf.message import DecodeError
from warmhouse.heating.v1.heating_pb2 import HeatingPlan

log = logging.getLogger(__name__)

# A plan is well under a kilobyte; a far larger file is not one.
MAX_PLAN_BYTES = 64 * 1024
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_UNSAFE_CHARACTER = re.compile(r"[^A-Za-z0-9._-]")


def plan_path(state_dir: Path, device_id: str) -> Path:
    """The device's file in `state_dir`. An id that is not a plain file name (a path, a dot
    first, odd characters) is made one, with a digest of the id so two never share a file."""
    if _SAFE_NAME.fullmatch(device_id):
        return state_dir / f"{device_id}.plan"
    digest = hashlib.sha256(device_id.encode()).hexdigest()[:16]
    readable = _UNSAFE_CHARACTER.sub("_", device_id)[:64].lstrip(".")
    return state_dir / f"{readable}-{digest}.plan"


def _temporary_path(path: Path) -> Path:
    """Where a new plan is written before it replaces `path`: one name per device, so a
    write cut short leaves one file, found without listing the directory."""
    return path.with_name(f"{path.name}.tmp")


def load_plan(path: Path) -> HeatingPlan | None:
    """The stored plan; None when there is none or it cannot be read (said in the log).
    A temporary file left by a write cut short is removed."""
    with contextlib.suppress(OSError):
        _temporary_path(path).unlink(missing_ok=True)
    try:
        with path.open("rb") as stored:
            data = stored.read(MAX_PLAN_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("stored heating plan %s unreadable: %s", path, error)
        return None
    if len(data) > MAX_PLAN_BYTES:
        log.warning("stored heating plan %s is too large; ignored", path)
        return None
    try:
        return HeatingPlan.FromString(data)
    except DecodeError:
        log.warning("stored heating plan %s is corrupt; ignored", path)
        return None


def save_plan(path: Path, plan: HeatingPlan) -> None:
    """Replace the stored plan at once: a reader sees the old plan or the new, never half.
    OSError when it cannot be written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_path(path)
    try:
        with temporary.open("wb") as out:
            out.write(plan.SerializeToString(deterministic=True))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
