"""Each notification carries the facts a person needs, in English and in Russian."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.notification import templates
from services.notification.templates import EN, RU, Place

MOSCOW = ZoneInfo("Europe/Moscow")
AT = datetime(2025, 1, 10, 20, 5, tzinfo=UTC)  # 23:05 in Moscow
KITCHEN = Place("Kitchen heater", "Kitchen", "Dacha")


def whole(text: templates.Text) -> str:
    return f"{text.title}\n{text.body}"


def test_language_from_locale() -> None:
    assert templates.language("ru") == RU
    assert templates.language("ru-RU") == RU
    assert templates.language("en") == EN
    assert templates.language("") == EN
    assert templates.language("de") == EN


def test_gas_leak_in_english() -> None:
    text = whole(templates.danger_detected(EN, KITCHEN, templates.GAS_LEAK, None, True, AT, MOSCOW))
    for fact in ("Kitchen heater", "Kitchen", "Dacha", "gas alarm on", "2025-01-10 23:05"):
        assert fact in text
    assert "Leave the building now" in text
    assert "switches" in text
    assert "flames" in text
    assert "your local gas emergency number" in text


def test_gas_leak_in_russian() -> None:
    text = whole(templates.danger_detected(RU, KITCHEN, templates.GAS_LEAK, None, True, AT, MOSCOW))
    for fact in ("Kitchen heater", "Kitchen", "Dacha", "10.01.2025 23:05", "104"):
        assert fact in text
    assert "покиньте помещение" in text
    assert "открытым огнём" in text


@pytest.mark.parametrize("lang", [EN, RU])
def test_overheating_has_the_temperature_and_what_to_do(lang: str) -> None:
    text = whole(
        templates.danger_detected(lang, KITCHEN, templates.OVERHEATING, 78.46, None, AT, MOSCOW)
    )
    assert ("78.5 °C" if lang == EN else "78,5 °C") in text
    assert ("switch the heater off at the wall" if lang == EN else "отключите обогреватель") in text


@pytest.mark.parametrize("lang", [EN, RU])
def test_all_clear_names_the_hazard_and_the_place(lang: str) -> None:
    text = whole(
        templates.danger_cleared(lang, KITCHEN, templates.GAS_LEAK, None, False, AT, MOSCOW)
    )
    assert "Dacha" in text
    assert "Kitchen heater" in text
    assert ("gas leak" if lang == EN else "утечки газа") in text
    assert ("All clear" if lang == EN else "Отбой тревоги") in text


@pytest.mark.parametrize("lang", [EN, RU])
def test_offline_device_says_where_when_and_to_check_power_and_wifi(lang: str) -> None:
    text = whole(templates.device_status(lang, KITCHEN, templates.OFFLINE, AT, MOSCOW))
    assert "Kitchen heater" in text
    assert "Dacha" in text
    assert "23:05" in text
    assert "Wi-Fi" in text
    assert ("power" if lang == EN else "розетку") in text


def test_a_device_directly_in_its_home_is_not_in_a_room_of_the_same_name() -> None:
    text = whole(
        templates.device_status(EN, Place("Boiler", "Dacha", "Dacha"), "ERROR", AT, MOSCOW)
    )
    assert "room" not in text
    assert "home 'Dacha'" in text


@pytest.mark.parametrize(("lang", "amount"), [(EN, "1,234.50 RUB"), (RU, "1\u00a0234,50 RUB")])
def test_invoice_issued_and_overdue_have_amount_and_due_date(lang: str, amount: str) -> None:
    issued = whole(templates.invoice_issued(lang, 1234.5, "RUB", AT, MOSCOW))
    overdue = whole(templates.invoice_overdue(lang, 1234.5, "RUB", AT, MOSCOW))
    due = "2025-01-10" if lang == EN else "10.01.2025"
    for text in (issued, overdue):
        assert amount in text
        assert due in text


def test_invoice_due_date_is_the_users_local_date() -> None:
    # 22:00 UTC on the 10th is already the 11th in Moscow.
    late = datetime(2025, 1, 10, 22, 0, tzinfo=UTC)
    assert "2025-01-11" in templates.invoice_issued(EN, 10, "RUB", late, MOSCOW).body


@pytest.mark.parametrize("lang", [EN, RU])
def test_payment_failed_gives_the_reason(lang: str) -> None:
    text = whole(templates.payment_failed(lang, 99.0, "RUB", "card_declined", AT, MOSCOW))
    assert "card_declined" in text
    assert ("99.00 RUB" if lang == EN else "99,00 RUB") in text


@pytest.mark.parametrize("lang", [EN, RU])
def test_payment_succeeded_has_the_amount(lang: str) -> None:
    assert "500" in whole(templates.payment_succeeded(lang, 500, "RUB", AT, MOSCOW))


def test_ticket_answered_names_the_subject() -> None:
    assert (
        templates.ticket_answered(EN, "No heat").title == "Support answered your ticket 'No heat'"
    )
    assert "«Нет тепла»" in templates.ticket_answered(RU, "Нет тепла").title


@pytest.mark.parametrize(("lang", "state"), [(EN, "resolved"), (RU, "решено")])
def test_ticket_status_changed_names_subject_and_status(lang: str, state: str) -> None:
    text = whole(templates.ticket_status_changed(lang, "No heat", "RESOLVED"))
    assert "No heat" in text
    assert state in text


def test_welcome_in_both_languages() -> None:
    assert "Welcome" in templates.welcome(EN).title
    assert "Добро пожаловать" in templates.welcome(RU).title


def test_digest_lists_every_title() -> None:
    text = templates.digest(RU, ["Новый счёт", "Платёж прошёл"])
    assert "- Новый счёт" in text.body
    assert "- Платёж прошёл" in text.body
    assert "2" in text.title


def test_sms_text_is_title_and_body_cut_to_1600() -> None:
    assert templates.sms_text("T", "B") == "T\nB"
    long = templates.sms_text("T", "x" * 5000)
    assert len(long) == 1600
    assert long.startswith("T\nxxx")
    assert long.endswith("…")
