"""Money as the API carries it and as Billing keeps it: exact, in minor units.

The contract's amounts are JSON numbers in the currency's major unit (12.5
means 12.50). A double cannot hold most decimals exactly, so an amount is
read through its shortest decimal form (what the client wrote: 0.1 is
"0.1", never 0.1000000000000000055...), must have at most two decimal
places, and is kept as an integer count of minor units (kopecks, cents).
Sums are integers; nothing is ever computed in floating point. Going back,
a whole number of minor units under MAX_AMOUNT_MINOR prints as the shortest
double, which parses back to the same number: 0.1 + 0.2 is 30 minor units,
shown as 0.3.
"""

import math
import re
from decimal import Decimal

from services.runtime.errors import InvalidArgument

MINOR_PER_MAJOR = 100
# 10 billion in major units: far above any heating bill, far below 2**53
# minor units, so every amount round-trips through a double exactly.
MAX_AMOUNT_MINOR = 10**12
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)


def minor_units(amount: float, field: str = "amount") -> int:
    """A positive amount of at most two decimal places, in minor units; else
    INVALID_ARGUMENT naming `field` (never echoing the value)."""
    if not math.isfinite(amount) or amount <= 0:
        raise _invalid(field, "must be a positive number")
    minor = Decimal(repr(amount)) * MINOR_PER_MAJOR
    if minor != minor.to_integral_value():
        raise _invalid(field, "must have at most 2 decimal places")
    if minor > MAX_AMOUNT_MINOR:
        raise _invalid(field, f"must be at most {MAX_AMOUNT_MINOR // MINOR_PER_MAJOR:,}")
    return int(minor)


def major_units(minor: int) -> float:
    """What the API shows for `minor` minor units: the double nearest the
    decimal, which prints as exactly that decimal."""
    return float(Decimal(minor) / MINOR_PER_MAJOR)


def currency_code(code: str, field: str = "currency") -> str:
    """An ISO 4217 code as the API takes it: three upper-case letters."""
    if not _CURRENCY.fullmatch(code):
        raise InvalidArgument(
            "INVALID_CURRENCY", f"{field} must be an ISO 4217 code such as RUB", field=field
        )
    return code


def _invalid(field: str, problem: str) -> InvalidArgument:
    return InvalidArgument("INVALID_AMOUNT", f"{field} {problem}", field=field)
