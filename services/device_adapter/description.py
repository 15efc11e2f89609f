from warmhouse.device.v1 import device_pb2
from warmhouse.device_adapter.v1 import device_adapter_pb2

from services.runtime.device_links import ADAPTER_EVENT_BYTES, ADAPTER_EVENT_RETENTION
from services.runtime.service import ServiceDescription, method_paths

DEVICE_ADAPTER_SERVICE = device_adapter_pb2.DESCRIPTOR.services_by_name[
    "DeviceAdapterService"
].full_name
# The one call the adapter makes to the Device service.
AUTHENTICATE_DEVICE = (
    f"/{device_pb2.DESCRIPTOR.services_by_name['DeviceService'].full_name}/AuthenticateDevice"
)

DESCRIPTION = ServiceDescription(
    name="device-adapter",
    grpc_services=(DEVICE_ADAPTER_SERVICE,),
    # Hardware carries no token: its Hello frame is its credential.
    public_methods=method_paths(DEVICE_ADAPTER_SERVICE, "Connect"),
    internal_methods=method_paths(DEVICE_ADAPTER_SERVICE, "SendCommand", "GetConnection"),
    # Its state is its open streams; what they mean lives in the Device service.
    owns_database=False,
    behind_edge=False,
    # AuthenticateDevice, for each Hello.
    calls=("device",),
    event_retention=ADAPTER_EVENT_RETENTION,
    event_bytes=ADAPTER_EVENT_BYTES,
)
