"""BillingService over gRPC: proto in → handler → proto out."""

from warmhouse.billing.v1 import billing_pb2, billing_pb2_grpc

from services.billing.description import BILLING_SERVICE
from services.billing.invoices import InvoiceHandlers, invoice_message
from services.billing.payments import PaymentHandlers, payment_message
from services.billing.provider_events import SIGNATURE_HEADER, ProviderEvents
from services.runtime import idempotency
from services.runtime.auth import current_caller
from services.runtime.errors import InvalidArgument
from services.runtime.grpc_types import ServicerContext
from services.runtime.internal_auth import current_service
from services.runtime.request import enum_name, metadata_value

CREATE_INVOICE = f"/{BILLING_SERVICE}/CreateInvoice"
CANCEL_INVOICE = f"/{BILLING_SERVICE}/CancelInvoice"
ISSUE_INVOICE = f"/{BILLING_SERVICE}/IssueInvoice"
CREATE_PAYMENT = f"/{BILLING_SERVICE}/CreatePayment"
TOP_UP_WALLET = f"/{BILLING_SERVICE}/TopUpWallet"


def invoice_status(value: int) -> str:
    """A listing's status filter; a number no status has is refused, not an empty list."""
    name = enum_name(billing_pb2.InvoiceStatus.DESCRIPTOR, value)
    if not name:
        raise InvalidArgument("INVALID_STATUS", "status must be PENDING, PAID or CANCELLED")
    return name


class BillingService(billing_pb2_grpc.BillingServiceServicer):
    def __init__(
        self, invoices: InvoiceHandlers, payments: PaymentHandlers, events: ProviderEvents
    ) -> None:
        self._invoices = invoices
        self._payments = payments
        self._events = events

    async def CreateInvoice(
        self, request: billing_pb2.CreateInvoiceRequest, context: ServicerContext
    ) -> billing_pb2.CreateInvoiceResponse:
        caller = current_caller()
        key = idempotency.key_of(context, request.request_id, caller.user_id, CREATE_INVOICE)
        return await self._invoices.create(caller, key, request)

    async def IssueInvoice(
        self, request: billing_pb2.IssueInvoiceRequest, context: ServicerContext
    ) -> billing_pb2.IssueInvoiceResponse:
        key = idempotency.key_of(context, request.request_id, current_service(), ISSUE_INVOICE)
        return await self._invoices.issue_for_service(key, request)

    async def GetInvoice(
        self, request: billing_pb2.GetInvoiceRequest, context: ServicerContext
    ) -> billing_pb2.GetInvoiceResponse:
        invoice = await self._invoices.get(current_caller(), request.invoice_id)
        return billing_pb2.GetInvoiceResponse(invoice=invoice_message(invoice))

    async def ListInvoices(
        self, request: billing_pb2.ListInvoicesRequest, context: ServicerContext
    ) -> billing_pb2.ListInvoicesResponse:
        unspecified = request.status == billing_pb2.INVOICE_STATUS_UNSPECIFIED
        invoices, next_token = await self._invoices.list_invoices(
            current_caller(),
            request.user_id,
            None if unspecified else invoice_status(request.status),
            request.page_size,
            request.page_token,
        )
        return billing_pb2.ListInvoicesResponse(
            invoices=[invoice_message(invoice) for invoice in invoices], next_page_token=next_token
        )

    async def CancelInvoice(
        self, request: billing_pb2.CancelInvoiceRequest, context: ServicerContext
    ) -> billing_pb2.CancelInvoiceResponse:
        caller = current_caller()
        key = idempotency.key_of(context, "", caller.user_id, CANCEL_INVOICE)
        return await self._invoices.cancel(caller, key, request)

    async def CreatePayment(
        self, request: billing_pb2.CreatePaymentRequest, context: ServicerContext
    ) -> billing_pb2.CreatePaymentResponse:
        caller = current_caller()
        key = idempotency.key_of(context, request.request_id, caller.user_id, CREATE_PAYMENT)
        method = enum_name(billing_pb2.PaymentMethod.DESCRIPTOR, request.method)
        return await self._payments.pay(caller, key, request, method)

    async def GetPayment(
        self, request: billing_pb2.GetPaymentRequest, context: ServicerContext
    ) -> billing_pb2.GetPaymentResponse:
        payment = await self._payments.get(current_caller(), request.payment_id)
        return billing_pb2.GetPaymentResponse(payment=payment_message(payment))

    async def ListPayments(
        self, request: billing_pb2.ListPaymentsRequest, context: ServicerContext
    ) -> billing_pb2.ListPaymentsResponse:
        payments, next_token = await self._payments.list_payments(
            current_caller(), request.invoice_id, request.page_size, request.page_token
        )
        return billing_pb2.ListPaymentsResponse(
            payments=[payment_message(payment) for payment in payments],
            next_page_token=next_token,
        )

    async def GetBalance(
        self, request: billing_pb2.GetBalanceRequest, context: ServicerContext
    ) -> billing_pb2.GetBalanceResponse:
        return await self._invoices.balance(current_caller(), request.user_id)

    async def TopUpWallet(
        self, request: billing_pb2.TopUpWalletRequest, context: ServicerContext
    ) -> billing_pb2.TopUpWalletResponse:
        caller = current_caller()
        key = idempotency.key_of(context, request.request_id, caller.user_id, TOP_UP_WALLET)
        method = enum_name(billing_pb2.PaymentMethod.DESCRIPTOR, request.method)
        return await self._payments.top_up(caller, key, request, method)

    async def ReceiveProviderEvent(
        self, request: billing_pb2.ReceiveProviderEventRequest, context: ServicerContext
    ) -> billing_pb2.ReceiveProviderEventResponse:
        signature = metadata_value(context.invocation_metadata(), SIGNATURE_HEADER) or ""
        await self._events.receive(signature, request.event.data)
        return billing_pb2.ReceiveProviderEventResponse()
