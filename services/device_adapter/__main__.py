"""`python -m services.device_adapter`: run the Device Adapter."""

from services.device_adapter.bootstrap import build
from services.runtime.server import run

run(build)
