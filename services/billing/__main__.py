"""`python -m services.billing`: run the Billing service."""

from services.billing.bootstrap import build
from services.runtime.server import run

run(build)
