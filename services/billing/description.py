from warmhouse.billing.v1 import billing_pb2

from services.runtime.service import ServiceDescription, method_paths

BILLING_SERVICE = billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name
PROVIDER_API_KEY_ENV = "WARMHOUSE_BILLING_PROVIDER_API_KEY_FILE"
WEBHOOK_SECRET_ENV = "WARMHOUSE_BILLING_WEBHOOK_SECRET_FILE"

DESCRIPTION = ServiceDescription(
    name="billing",
    grpc_services=(BILLING_SERVICE,),
    # The provider's webhook carries no user token: its signature authenticates it.
    public_methods=method_paths(BILLING_SERVICE, "ReceiveProviderEvent"),
    # Other services bill users (a subscription's monthly invoice).
    internal_methods=method_paths(BILLING_SERVICE, "IssueInvoice"),
    # Shared with the payment provider, held by Billing alone on our side.
    secret_files={
        PROVIDER_API_KEY_ENV: "payment-provider-api-key",
        WEBHOOK_SECRET_ENV: "payment-webhook-secret",
    },
    # Is the account invoiced an active one (GetUserStatus)?
    calls=("user",),
    # The payment provider's API.
    reaches_outside=True,
)
