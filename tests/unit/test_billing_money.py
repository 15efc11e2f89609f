"""Money: read exactly from the API's doubles, kept in minor units, shown back exactly."""

import json
import math

import pytest

from services.billing import money
from services.runtime.errors import InvalidArgument


@pytest.mark.parametrize(
    ("amount", "minor"),
    [(0.01, 1), (0.1, 10), (0.3, 30), (12.5, 1250), (19.99, 1999), (1e10, 10**12), (100, 10000)],
)
def test_amounts_are_read_exactly_in_minor_units(amount: float, minor: int) -> None:
    assert money.minor_units(amount) == minor


@pytest.mark.parametrize(
    "amount", [0.0, -0.0, -1.0, 0.001, 12.345, 1e10 + 0.01, math.nan, math.inf, -math.inf]
)
def test_amounts_the_contract_refuses(amount: float) -> None:
    with pytest.raises(InvalidArgument) as refused:
        money.minor_units(amount, "amount")
    assert refused.value.metadata["field"] == "amount"
    assert repr(amount) not in refused.value.message


def test_a_sum_of_tenths_is_exact_where_floats_are_not() -> None:
    assert 0.1 + 0.2 != 0.3
    total = money.minor_units(0.1) + money.minor_units(0.2)
    assert money.major_units(total) == 0.3
    assert json.dumps(money.major_units(total)) == "0.3"


def test_many_small_payments_add_up_exactly() -> None:
    paid = sum(money.minor_units(0.01) for _ in range(10_000))
    assert paid == money.minor_units(100.0)
    assert money.major_units(paid) == 100.0


def test_every_amount_in_range_round_trips_through_the_api() -> None:
    for minor in (*range(0, 100_000, 7), money.MAX_AMOUNT_MINOR - 1, money.MAX_AMOUNT_MINOR):
        if minor:
            shown = money.major_units(minor)
            assert money.minor_units(json.loads(json.dumps(shown))) == minor


@pytest.mark.parametrize("code", ["RUB", "EUR"])
def test_currency_codes(code: str) -> None:
    assert money.currency_code(code) == code


@pytest.mark.parametrize("code", ["rub", "RU", "RUBB", "", "R\x00B", "РУБ"])
def test_malformed_currency_codes_are_refused(code: str) -> None:
    with pytest.raises(InvalidArgument):
        money.currency_code(code)
