"""Support's pure rules: the status machine and who may make each move, first-response
deadlines, when a comment answers or reopens, and the text a ticket may hold."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from services.runtime.errors import DomainError, InvalidArgument, PermissionDenied
from services.support import domain
from services.support.domain import (
    CLOSED,
    IN_PROGRESS,
    OPEN,
    PRIORITIES,
    RESOLVED,
    STATUSES,
    Actor,
    Deadlines,
)

ALLOWED = {
    (OPEN, IN_PROGRESS),
    (OPEN, RESOLVED),
    (OPEN, CLOSED),
    (IN_PROGRESS, OPEN),
    (IN_PROGRESS, RESOLVED),
    (IN_PROGRESS, CLOSED),
    (RESOLVED, IN_PROGRESS),
    (RESOLVED, OPEN),
    (RESOLVED, CLOSED),
}
AUTHOR_MAY = {(OPEN, CLOSED), (IN_PROGRESS, CLOSED), (RESOLVED, CLOSED), (RESOLVED, OPEN)}
MOVES = [(old, new) for old, new in itertools.product(STATUSES, STATUSES) if old != new]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("actor", list(Actor))
def test_the_same_status_is_no_change_for_anyone(actor: Actor, status: str) -> None:
    assert domain.check_move(actor, status, status) is False


@pytest.mark.parametrize(("old", "new"), MOVES)
@pytest.mark.parametrize("actor", [Actor.ADMIN, Actor.PLATFORM])
def test_staff_and_the_platform_make_exactly_the_moves_the_machine_allows(
    actor: Actor, old: str, new: str
) -> None:
    if (old, new) in ALLOWED:
        assert domain.check_move(actor, old, new) is True
    else:
        with pytest.raises(DomainError) as refused:
            domain.check_move(actor, old, new)
        assert type(refused.value) is DomainError  # FAILED_PRECONDITION
        assert refused.value.reason == "STATUS_TRANSITION_NOT_ALLOWED"
        assert old in refused.value.message
        assert new in refused.value.message


@pytest.mark.parametrize(("old", "new"), MOVES)
def test_the_author_only_closes_or_reopens_a_resolved_ticket(old: str, new: str) -> None:
    if (old, new) in AUTHOR_MAY:
        assert domain.check_move(Actor.AUTHOR, old, new) is True
    elif (old, new) in ALLOWED:
        with pytest.raises(PermissionDenied):
            domain.check_move(Actor.AUTHOR, old, new)
    else:
        # A move the machine refuses is refused as such, whoever asks.
        with pytest.raises(DomainError) as refused:
            domain.check_move(Actor.AUTHOR, old, new)
        assert refused.value.reason == "STATUS_TRANSITION_NOT_ALLOWED"


def test_closed_is_final() -> None:
    assert domain.TRANSITIONS[CLOSED] == frozenset()
    assert {new for old, new in ALLOWED if old == CLOSED} == set()


def test_default_deadlines_by_priority() -> None:
    deadlines = Deadlines()
    assert deadlines.due("URGENT", T0) == T0 + timedelta(minutes=15)
    assert deadlines.due("HIGH", T0) == T0 + timedelta(hours=1)
    assert deadlines.due("NORMAL", T0) == T0 + timedelta(hours=8)
    assert deadlines.due("LOW", T0) == T0 + timedelta(hours=24)


def test_configured_deadlines_are_used() -> None:
    deadlines = Deadlines(urgent=timedelta(seconds=5), low=timedelta(days=3))
    assert deadlines.due("URGENT", T0) == T0 + timedelta(seconds=5)
    assert deadlines.due("LOW", T0) == T0 + timedelta(days=3)
    assert [deadlines.of(p) for p in PRIORITIES] == sorted(deadlines.of(p) for p in PRIORITIES)[
        ::-1
    ]


def test_priority_defaults_to_normal_and_unknown_ones_are_refused() -> None:
    assert domain.priority_or_default(None) == "NORMAL"
    assert domain.priority_or_default("HIGH") == "HIGH"
    for bad in ("", "TICKET_PRIORITY_UNSPECIFIED"):
        with pytest.raises(InvalidArgument):
            domain.priority_or_default(bad)
    with pytest.raises(InvalidArgument):
        domain.known_status("TICKET_STATUS_UNSPECIFIED")


def test_only_an_admins_public_comment_on_someone_elses_ticket_is_an_answer() -> None:
    assert domain.is_first_response("a", "u", admin=True, internal=False)
    assert not domain.is_first_response("a", "u", admin=True, internal=True)
    assert not domain.is_first_response("u", "u", admin=True, internal=False)
    assert not domain.is_first_response("u", "u", admin=False, internal=False)


def test_only_the_non_admin_authors_comment_on_a_resolved_ticket_reopens_it() -> None:
    assert domain.reopens(RESOLVED, author=True, admin=False)
    assert not domain.reopens(RESOLVED, author=True, admin=True)
    assert not domain.reopens(RESOLVED, author=False, admin=True)
    for status in (OPEN, IN_PROGRESS, CLOSED):
        assert not domain.reopens(status, author=True, admin=False)


def test_long_text_keeps_lines_and_is_trimmed() -> None:
    assert domain.long_text("  first line\r\nsecond\tline \n", "message") == (
        "first line\nsecond\tline"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "FIELD_REQUIRED"),
        (" \n\t ", "FIELD_REQUIRED"),
        ("nul \x00 inside", "INVALID_CHARACTERS"),
        ("escape \x1b[31m", "INVALID_CHARACTERS"),
        ("lone \r return", "INVALID_CHARACTERS"),
        ("x" * 10_001, "FIELD_TOO_LONG"),
    ],
)
def test_long_text_refusals_do_not_echo_the_input(value: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        domain.long_text(value, "description")
    assert refused.value.reason == reason
    assert value.strip() == "" or value[:10] not in refused.value.message


def test_long_text_takes_ten_thousand_characters() -> None:
    assert len(domain.long_text("y" * 10_000, "message")) == 10_000


def test_a_subject_is_one_line_of_at_most_200() -> None:
    assert domain.subject_text("  Heating broken ") == "Heating broken"
    with pytest.raises(InvalidArgument):
        domain.subject_text("two\nlines")
    with pytest.raises(InvalidArgument):
        domain.subject_text("s" * 201)
    assert domain.subject_text("s" * 200) == "s" * 200
