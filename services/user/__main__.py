"""`python -m services.user`: run the User service."""

from services.runtime.server import run
from services.user.bootstrap import build

run(build)
