"""`python -m services.support`: run the Support service."""

from services.runtime.server import run
from services.support.bootstrap import build

run(build)
