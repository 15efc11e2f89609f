# Russian text is Cyrillic on purpose: letters that look Latin are not a mistake here.
# ruff: noqa: RUF001
"""What each notification says, in the user's language ("en" or "ru").

Pure functions, no I/O: the facts a person needs to act (which device, where,
what it read, when in their own time zone, what to do; how much, by when;
which ticket). Anything but Russian reads in English.
"""

import unicodedata
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.notification.records import PUSH, SMS

RU, EN = "ru", "en"
GAS_LEAK, OVERHEATING = "GAS_LEAK", "OVERHEATING"
OFFLINE, ERROR = "OFFLINE", "ERROR"
# What each channel's gateway takes, in characters (code points, as the
# gateways count them; services/message_sandbox/validation.py): an SMS is at
# most ten segments; a push title 200, its body 4000.
SMS_MAX_CHARACTERS = 1600
PUSH_TITLE_MAX_CHARACTERS = 200
PUSH_BODY_MAX_CHARACTERS = 4000
# Joins the character before it to the next (emoji sequences): never cut after it.
_JOINERS = frozenset({"\u200d"})
ELLIPSIS = "…"


@dataclass(frozen=True)
class Text:
    title: str
    body: str


@dataclass(frozen=True)
class Place:
    """Where a device is: names, or ids where names are not known."""

    device: str
    room: str
    home: str


def language(locale: str) -> str:
    return RU if locale.lower().replace("_", "-").split("-")[0] == RU else EN


def _number(value: float, lang: str, digits: int) -> str:
    text = f"{value:,.{digits}f}"
    if lang == RU:
        return text.replace(",", "\u00a0").replace(".", ",")
    return text


def local_time(at: datetime, zone: zoneinfo.ZoneInfo, lang: str) -> str:
    local = at.astimezone(zone)
    shown = local.strftime("%d.%m.%Y %H:%M") if lang == RU else local.strftime("%Y-%m-%d %H:%M")
    return f"{shown} ({zone.key})"


def _date(at: datetime, zone: zoneinfo.ZoneInfo, lang: str) -> str:
    local = at.astimezone(zone)
    return local.strftime("%d.%m.%Y") if lang == RU else local.strftime("%Y-%m-%d")


def money(amount: float, currency: str, lang: str) -> str:
    return f"{_number(amount, lang, 2)} {currency}"


def _where(place: Place, lang: str) -> str:
    if lang == RU:
        if place.room == place.home:
            return f"«{place.device}» (дом «{place.home}»)"
        return f"«{place.device}» (помещение «{place.room}», дом «{place.home}»)"
    if place.room == place.home:
        return f"'{place.device}' (home '{place.home}')"
    return f"'{place.device}' (room '{place.room}', home '{place.home}')"


def device_status(
    lang: str, place: Place, status: str, at: datetime, zone: zoneinfo.ZoneInfo
) -> Text:
    where, when = _where(place, lang), local_time(at, zone, lang)
    if lang == RU:
        if status == OFFLINE:
            return Text(
                f"Устройство «{place.device}» не в сети",
                f"Устройство {where} перестало выходить на связь в {when}. "
                "Проверьте, что оно включено в розетку и что работает Wi-Fi.",
            )
        return Text(
            f"Ошибка устройства «{place.device}»",
            f"Устройство {where} сообщило об ошибке в {when}. "
            "Посмотрите его состояние в приложении; если ошибка не проходит, "
            "выключите его и обратитесь в поддержку.",
        )
    if status == OFFLINE:
        return Text(
            f"Device '{place.device}' is offline",
            f"Device {where} stopped reporting at {when}. "
            "Check that it has power and that the Wi-Fi is working.",
        )
    return Text(
        f"Device '{place.device}' reported an error",
        f"Device {where} reported an error at {when}. "
        "Check its state in the app; if the error persists, switch it off and contact support.",
    )


def _reading(temperature: float | None, gas_alarm: bool | None, lang: str) -> str:
    parts = []
    if temperature is not None:
        value = f"{_number(temperature, lang, 1)} °C"
        parts.append(f"температура {value}" if lang == RU else f"temperature {value}")
    if gas_alarm:
        parts.append("датчик газа в тревоге" if lang == RU else "gas alarm on")
    elif gas_alarm is False:
        parts.append("датчик газа в норме" if lang == RU else "gas alarm off")
    return ", ".join(parts)


def danger_detected(
    lang: str,
    place: Place,
    hazard: str,
    temperature: float | None,
    gas_alarm: bool | None,
    at: datetime,
    zone: zoneinfo.ZoneInfo,
) -> Text:
    where, when = _where(place, lang), local_time(at, zone, lang)
    reading = _reading(temperature, gas_alarm, lang)
    measured = f" ({reading})" if reading else ""
    if lang == RU:
        if hazard == GAS_LEAK:
            return Text(
                f"ОПАСНО: утечка газа, дом «{place.home}»",
                f"Датчик {where} обнаружил газ в {when}{measured}. "
                "Немедленно покиньте помещение. Не включайте и не выключайте свет и "
                "электроприборы, не пользуйтесь открытым огнём. Выйдя на улицу, "
                "позвоните в аварийную газовую службу: 104.",
            )
        return Text(
            f"ОПАСНО: перегрев, дом «{place.home}»",
            f"Устройство {where} перегрелось в {when}{measured}. "
            "Если это безопасно, отключите обогреватель от розетки или автоматом; "
            "уберите от него всё, что может загореться. При дыме или огне уходите "
            "и звоните 101 или 112.",
        )
    if hazard == GAS_LEAK:
        return Text(
            f"DANGER: gas leak at home '{place.home}'",
            f"The sensor {where} detected gas at {when}{measured}. "
            "Leave the building now. Do not operate light switches or appliances and use "
            "no open flames. Once outside, call your local gas emergency number.",
        )
    return Text(
        f"DANGER: overheating at home '{place.home}'",
        f"Device {where} overheated at {when}{measured}. "
        "If it is safe, switch the heater off at the wall or the breaker and move anything "
        "that could burn away from it. If there is smoke or fire, get out and call the "
        "emergency services.",
    )


def danger_cleared(
    lang: str,
    place: Place,
    hazard: str,
    temperature: float | None,
    gas_alarm: bool | None,
    at: datetime,
    zone: zoneinfo.ZoneInfo,
) -> Text:
    where, when = _where(place, lang), local_time(at, zone, lang)
    reading = _reading(temperature, gas_alarm, lang)
    measured = f" ({reading})" if reading else ""
    if lang == RU:
        what = "утечки газа" if hazard == GAS_LEAK else "перегрева"
        return Text(
            f"Отбой тревоги {what}, дом «{place.home}»",
            f"Показания {where} снова в норме с {when}{measured}. "
            + (
                "Проветрите помещение и не возвращайтесь, пока аварийная служба не разрешит."
                if hazard == GAS_LEAK
                else "Прежде чем снова включать обогреватель, убедитесь, что он исправен."
            ),
        )
    what = "gas leak" if hazard == GAS_LEAK else "overheating"
    return Text(
        f"All clear: {what} at home '{place.home}' is over",
        f"Readings of {where} are back to normal since {when}{measured}. "
        + (
            "Air the rooms and go back in only when the emergency service says it is safe."
            if hazard == GAS_LEAK
            else "Make sure the heater is sound before switching it on again."
        ),
    )


def invoice_issued(
    lang: str, amount: float, currency: str, due: datetime, zone: zoneinfo.ZoneInfo
) -> Text:
    total, by = money(amount, currency, lang), _date(due, zone, lang)
    if lang == RU:
        return Text(f"Новый счёт на {total}", f"Выставлен счёт на {total}. Оплатите его до {by}.")
    return Text(f"New invoice for {total}", f"An invoice for {total} was issued. Due by {by}.")


def invoice_overdue(
    lang: str, amount: float, currency: str, due: datetime, zone: zoneinfo.ZoneInfo
) -> Text:
    total, by = money(amount, currency, lang), _date(due, zone, lang)
    if lang == RU:
        return Text(
            f"Счёт просрочен: {total}",
            f"Срок оплаты счёта истёк {by}. К оплате: {total}. Оплатите его как можно скорее.",
        )
    return Text(
        f"Invoice overdue: {total}",
        f"Your invoice was due on {by}. Still to pay: {total}. Please pay it as soon as you can.",
    )


def payment_succeeded(
    lang: str, amount: float, currency: str, at: datetime, zone: zoneinfo.ZoneInfo
) -> Text:
    total, when = money(amount, currency, lang), local_time(at, zone, lang)
    if lang == RU:
        return Text(f"Платёж на {total} прошёл", f"Платёж на {total} принят {when}. Спасибо!")
    return Text(f"Payment of {total} received", f"Your payment of {total} went through {when}.")


def payment_failed(
    lang: str, amount: float, currency: str, reason: str, at: datetime, zone: zoneinfo.ZoneInfo
) -> Text:
    total, when = money(amount, currency, lang), local_time(at, zone, lang)
    if lang == RU:
        why = f" Причина: {reason}." if reason else ""
        return Text(
            f"Платёж на {total} не прошёл",
            f"Платёж на {total} отклонён {when}.{why} "
            "Попробуйте ещё раз или выберите другой способ оплаты.",
        )
    why = f" Reason: {reason}." if reason else ""
    return Text(
        f"Payment of {total} failed",
        f"Your payment of {total} was declined {when}.{why} "
        "Try again or choose another payment method.",
    )


def ticket_answered(lang: str, subject: str) -> Text:
    if lang == RU:
        return Text(
            f"Поддержка ответила на ваше обращение «{subject}»",
            f"В обращении «{subject}» новый ответ поддержки. Откройте его в приложении.",
        )
    return Text(
        f"Support answered your ticket '{subject}'",
        f"There is a new answer from support on your ticket '{subject}'. Open it in the app.",
    )


_STATUS_RU = {
    "OPEN": "открыто",
    "IN_PROGRESS": "в работе",
    "RESOLVED": "решено",
    "CLOSED": "закрыто",
}
_STATUS_EN = {
    "OPEN": "open",
    "IN_PROGRESS": "in progress",
    "RESOLVED": "resolved",
    "CLOSED": "closed",
}


def ticket_status_changed(lang: str, subject: str, status: str) -> Text:
    if lang == RU:
        state = _STATUS_RU.get(status, status)
        return Text(
            f"Обращение «{subject}»: {state}",
            f"Статус вашего обращения «{subject}» изменился: теперь оно {state}.",
        )
    state = _STATUS_EN.get(status, status)
    return Text(
        f"Ticket '{subject}' is now {state}",
        f"The status of your ticket '{subject}' changed: it is now {state}.",
    )


def welcome(lang: str) -> Text:
    if lang == RU:
        return Text(
            "Добро пожаловать в WarmHouse",
            "Ваш аккаунт создан. Добавьте свой дом и устройства в приложении; "
            "о тревогах, счетах и ответах поддержки мы сообщим вам здесь.",
        )
    return Text(
        "Welcome to WarmHouse",
        "Your account is ready. Add your home and devices in the app; we will tell you "
        "here about alarms, invoices and answers from support.",
    )


def digest(lang: str, titles: Sequence[str]) -> Text:
    lines = "\n".join(f"- {title}" for title in titles)
    if lang == RU:
        return Text(f"WarmHouse: сводка, уведомлений: {len(titles)}", lines)
    return Text(f"WarmHouse: your digest, {len(titles)} notifications", lines)


def _continues(char: str) -> bool:
    """Whether `char` belongs to the character before it (a combining accent, a
    variation selector): a cut must not fall just before it."""
    return unicodedata.category(char) in ("Mn", "Mc", "Me")


def cut(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its start and "…" in `limit`,
    cut between whole characters: a letter is never parted from its accent, nor
    an emoji sequence split at a joiner."""
    if len(text) <= limit:
        return text
    end = limit - len(ELLIPSIS)
    while end > 0 and (_continues(text[end]) or text[end - 1] in _JOINERS):
        end -= 1
    return text[:end].rstrip() + ELLIPSIS


def sms_text(title: str, body: str) -> str:
    """An SMS carries the title and body together, cut to what an SMS may hold."""
    return cut(f"{title}\n{body}" if body else title, SMS_MAX_CHARACTERS)


def for_channel(channel: str, text: Text) -> Text:
    """`text` as `channel` can carry it: the one place messages are cut to the
    gateways' limits. SMS: title and body as one text (the title is unused);
    push: title and body each cut; e-mail: as written (a header folds, a body
    has no limit)."""
    if channel == SMS:
        return Text(text.title, sms_text(text.title, text.body))
    if channel == PUSH:
        return Text(
            cut(text.title, PUSH_TITLE_MAX_CHARACTERS), cut(text.body, PUSH_BODY_MAX_CHARACTERS)
        )
    return text
