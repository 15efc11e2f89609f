from warmhouse.space.v1 import space_pb2

from services.runtime.service import ServiceDescription, method_paths

SPACE_SERVICE = space_pb2.DESCRIPTOR.services_by_name["SpaceService"].full_name

DESCRIPTION = ServiceDescription(
    name="space",
    grpc_services=(SPACE_SERVICE,),
    internal_methods=method_paths(SPACE_SERVICE, "GetSpaceAccess"),
    # Who a member is (GetUserStatus) and how many devices a home holds.
    calls=("user", "device"),
)
