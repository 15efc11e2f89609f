"""Free text from clients (names of spaces, devices, …), checked once for all services."""

import unicodedata

from services.runtime.errors import InvalidArgument

NAME_MAX_LENGTH = 100
# Control characters (NUL, tab, newline, escape…), lone surrogates, and line
# or paragraph separators: a name is one printable line.
_UNPRINTABLE = frozenset({"Cc", "Cs", "Zl", "Zp"})


def display_name(name: str, field: str = "name", max_length: int = NAME_MAX_LENGTH) -> str:
    """A name as stored: 1 to `max_length` characters of one printable line,
    without surrounding blanks. Errors never repeat what was sent."""
    if len(name) > max_length:
        raise InvalidArgument(
            "FIELD_TOO_LONG", f"{field} must be at most {max_length} characters", field=field
        )
    if any(unicodedata.category(character) in _UNPRINTABLE for character in name):
        raise InvalidArgument(
            "INVALID_CHARACTERS", f"{field} must not contain control characters", field=field
        )
    name = name.strip()
    if not name:
        raise InvalidArgument("FIELD_REQUIRED", f"{field} is required", field=field)
    return name
