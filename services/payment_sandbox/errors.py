"""The errors the API answers with, each with its HTTP status and Stripe-like type."""


class ApiError(Exception):
    """An answer of `status` with {"error": {"type", "code", "message"}}.

    Messages are our own words only: they never repeat what the caller sent.
    """

    status = 500
    type = "api_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class InvalidRequest(ApiError):
    status = 400
    type = "invalid_request_error"


class Unauthenticated(ApiError):
    status = 401
    type = "authentication_error"


class NotFound(ApiError):
    status = 404
    type = "invalid_request_error"


class IdempotencyConflict(ApiError):
    status = 409
    type = "idempotency_error"


class StateConflict(ApiError):
    """The object is not in a state that allows the change asked for."""

    status = 409
    type = "invalid_request_error"


class PayloadTooLarge(ApiError):
    status = 413
    type = "invalid_request_error"
