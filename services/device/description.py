from warmhouse.device.v1 import device_pb2

from services.runtime.service import ServiceDescription, method_paths

DEVICE_SERVICE = device_pb2.DESCRIPTOR.services_by_name["DeviceService"].full_name
SECRET_KEY_ENV = "WARMHOUSE_DEVICE_SECRET_KEY_FILE"

DESCRIPTION = ServiceDescription(
    name="device",
    grpc_services=(DEVICE_SERVICE,),
    internal_methods=method_paths(DEVICE_SERVICE, "AuthenticateDevice", "CountSpaceDevices"),
    # Keys the hashes of device secrets: held by the Device service alone.
    secret_files={SECRET_KEY_ENV: "device-secret-key"},
    # May the caller act on the home (GetSpaceAccess)? Commands reach the
    # adapters over NATS, not gRPC.
    calls=("space",),
)
