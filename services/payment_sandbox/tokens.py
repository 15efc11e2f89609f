"""Stripe's test card tokens, and what a charge made with each one does."""

from dataclasses import dataclass

SUCCEEDING_TOKEN = "tok_visa"
# Recorded as pending at once, answered after --hang-seconds: what a caller whose
# request timed out must reconcile. tok_hang then succeeds; tok_hangDeclined is
# then declined (the card network timed out: nothing charged).
HANGING_TOKEN = "tok_hang"
HANGING_DECLINED_TOKEN = "tok_hangDeclined"
HANGING_TOKENS = frozenset({HANGING_TOKEN, HANGING_DECLINED_TOKEN})


@dataclass(frozen=True)
class Decline:
    code: str
    message: str


DECLINES = {
    "tok_chargeDeclined": Decline("card_declined", "Your card was declined."),
    "tok_chargeDeclinedInsufficientFunds": Decline(
        "insufficient_funds", "Your card has insufficient funds."
    ),
    "tok_chargeDeclinedExpiredCard": Decline("expired_card", "Your card has expired."),
    "tok_chargeDeclinedProcessingError": Decline(
        "processing_error", "An error occurred while processing your card. Try again later."
    ),
    HANGING_DECLINED_TOKEN: Decline(
        "processing_error", "The card network did not answer in time; nothing was charged."
    ),
}

KNOWN_TOKENS = (SUCCEEDING_TOKEN, HANGING_TOKEN, *DECLINES)


def is_known(token: str) -> bool:
    return token in KNOWN_TOKENS


def decline_for(token: str) -> Decline | None:
    """How a charge with `token` is declined; None when it succeeds."""
    return DECLINES.get(token)
