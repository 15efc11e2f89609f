"""Free text from clients (names of spaces, devices, …), checked once for all services."""

import unicodedata

from services.runtime.errors import InvalidArgument

NAME_MAX_LENGTH = 100
# Control characters (NUL, tab, newline, escape…), lone surrogates, line and
# paragraph separators, private-use and unassigned code points: a name is one
# line of characters every reader can see the same way.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp", "Co", "Cn"})
# Bidirectional marks, embeddings, overrides and isolates (they make
# "txt.exe" read as "exe.txt") and interlinear annotations: invisible, and
# able to make two names that look alike differ. (Other format characters
# stay: emoji and some scripts need joiners.)
_HIDDEN_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufff9\ufffa\ufffb"
)
# Tag characters are invisible too, but spell a subdivision flag after a black
# flag (England: U+1F3F4 + tags + U+E007F); anywhere else they hide text.
_BLACK_FLAG = "\U0001f3f4"
_TAGS = range(0xE0000, 0xE0080)
# Letters and symbols that draw nothing (Hangul fillers, the blank braille cell).
_BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_VISIBLE_CATEGORY_PREFIXES = ("L", "N", "P", "S")


def _visible(character: str) -> bool:
    return (
        unicodedata.category(character).startswith(_VISIBLE_CATEGORY_PREFIXES)
        and character not in _BLANK_LOOKING
    )


def _stray_tags(name: str) -> bool:
    """Whether a tag character stands anywhere but in a flag's tag sequence."""
    in_flag = False
    for character in name:
        if ord(character) in _TAGS:
            if not in_flag:
                return True
            in_flag = character != "\U000e007f"  # the cancel tag ends the flag
        else:
            in_flag = character == _BLACK_FLAG
    return False


def display_name(name: str, field: str = "name", max_length: int = NAME_MAX_LENGTH) -> str:
    """A name as stored: 1 to `max_length` characters of one line, with at
    least one visible character, without surrounding blanks. Errors never
    repeat what was sent."""
    if len(name) > max_length:
        raise InvalidArgument(
            "FIELD_TOO_LONG", f"{field} must be at most {max_length} characters", field=field
        )
    if _stray_tags(name) or any(
        unicodedata.category(character) in _REFUSED_CATEGORIES or character in _HIDDEN_CONTROLS
        for character in name
    ):
        raise InvalidArgument(
            "INVALID_CHARACTERS",
            f"{field} must not contain control, private-use or unassigned characters",
            field=field,
        )
    name = name.strip()
    if not name:
        raise InvalidArgument("FIELD_REQUIRED", f"{field} is required", field=field)
    if not any(_visible(character) for character in name):
        raise InvalidArgument(
            "INVALID_CHARACTERS", f"{field} must contain a visible character", field=field
        )
    return name
