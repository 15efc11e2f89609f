"""Names from clients: one visible line, never spoofed by invisible characters."""

import pytest

from services.runtime.errors import InvalidArgument
from services.runtime.text import display_name


@pytest.mark.parametrize(
    "name",
    [
        "Living room",
        "Радиатор 2",
        "🏠",
        "👨\u200d👩\u200d👧 room",  # a family emoji: zero-width joiners between its parts
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian needs the non-joiner
        "Kitchen #2 (north)",
        "Fans \U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",  # England
        "caf\u0065\u0301",  # e + combining acute
    ],
)
def test_names_people_write_are_kept(name: str) -> None:
    assert display_name(f"  {name} ") == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("\u202eHome evil txt.exe", "INVALID_CHARACTERS"),  # right-to-left override
        ("a\u2066b", "INVALID_CHARACTERS"),  # an isolate
        ("ab\u200fc", "INVALID_CHARACTERS"),  # a right-to-left mark
        ("a\ufff9b", "INVALID_CHARACTERS"),  # an interlinear annotation
        ("a\U000e0041\U000e007f", "INVALID_CHARACTERS"),  # tags hiding text
        ("\U0001f3f4\U000e0067 x \U000e0041", "INVALID_CHARACTERS"),  # a tag after a flag ended
        ("\u200b\u200b", "INVALID_CHARACTERS"),  # zero-width spaces only
        ("\ufeff", "INVALID_CHARACTERS"),
        ("\u3164", "INVALID_CHARACTERS"),  # Hangul filler
        ("\u2800\u2800", "INVALID_CHARACTERS"),  # blank braille
        ("\u0301\u0301", "INVALID_CHARACTERS"),  # combining marks only
        ("\ue000 private", "INVALID_CHARACTERS"),
        ("unassigned \U000e0fff", "INVALID_CHARACTERS"),
        ("nul\x00byte", "INVALID_CHARACTERS"),
        ("two\nlines", "INVALID_CHARACTERS"),
        ("   ", "FIELD_REQUIRED"),
        ("x" * 101, "FIELD_TOO_LONG"),
    ],
)
def test_invisible_or_spoofing_names_are_refused(name: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        display_name(name)
    assert refused.value.reason == reason
    assert name not in refused.value.message
