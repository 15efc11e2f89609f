"""Every WarmHouse service. Adding a service = its folder + one line here.

The local stack, Envoy's configuration, the tests' stack and the Kubernetes
manifests are all derived from this list.
"""

from services.billing.description import DESCRIPTION as BILLING
from services.device.description import DESCRIPTION as DEVICE
from services.device_adapter.description import DESCRIPTION as DEVICE_ADAPTER
from services.notification.description import DESCRIPTION as NOTIFICATION
from services.runtime.service import ServiceDescription
from services.space.description import DESCRIPTION as SPACE
from services.support.description import DESCRIPTION as SUPPORT
from services.user.description import DESCRIPTION as USER

# In start order: a service starts after those it calls at start-up (none yet).
SERVICES: tuple[ServiceDescription, ...] = (
    USER,
    SPACE,
    DEVICE,
    DEVICE_ADAPTER,
    BILLING,
    SUPPORT,
    NOTIFICATION,
)
