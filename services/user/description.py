"""The User service, as the runtime, the local stack and Envoy see it."""

from warmhouse.user.v1 import user_pb2

from services.runtime.service import ServiceDescription, method_paths

USER_SERVICE = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
SIGNING_KEY_ENV = "WARMHOUSE_JWT_PRIVATE_KEY_FILE"
SIGNING_KEY_FILE_NAME = "jwt-signing.pem"

DESCRIPTION = ServiceDescription(
    name="user",
    grpc_services=(USER_SERVICE,),
    public_methods=method_paths(USER_SERVICE, "CreateUser", "Login", "RefreshSession", "GetJwks"),
    internal_methods=method_paths(USER_SERVICE, "GetUserStatus"),
    secret_files={SIGNING_KEY_ENV: SIGNING_KEY_FILE_NAME},
)
