"""`python -m services.device`: run the Device service."""

from services.device.bootstrap import build
from services.runtime.server import run

run(build)
