"""`python -m services.notification`: run the Notification service."""

from services.notification.bootstrap import build
from services.runtime.server import run

run(build)
