"""Every WarmHouse service. Adding a service = its folder + one line here.

The local stack, Envoy's configuration, the tests' stack and the Kubernetes
manifests are all derived from this list.
"""

from services.runtime.service import ServiceDescription
from services.user.description import DESCRIPTION as USER

SERVICES: tuple[ServiceDescription, ...] = (USER,)
