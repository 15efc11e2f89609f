from warmhouse.support.v1 import support_pb2

from services.runtime.service import ServiceDescription

SUPPORT_SERVICE = support_pb2.DESCRIPTOR.services_by_name["SupportService"].full_name

DESCRIPTION = ServiceDescription(name="support", grpc_services=(SUPPORT_SERVICE,))
