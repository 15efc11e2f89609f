"""`python -m services.space`: run the Space service."""

from services.runtime.server import run
from services.space.bootstrap import build

run(build)
