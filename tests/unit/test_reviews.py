"""What needs review, the basis a mark records, and the note's rules (connector.model.reviews, pure)."""

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from connector.model import ChargeLine, SourceRef
from connector.model.outcomes import AdministrationOutcome, OutcomeKind, Unmapped
from connector.model.reviews import NOTE_MAX, ReviewMark, check_note, is_current, review_basis, review_need

LINE = ChargeLine("ln-1", "96374", 1, date(2026, 3, 2), (), "0260", "IVP96374", ("a1",), "push.initial", "why")
FLAGGED = replace(LINE, line_id="ln-2", code="96375", administration_ids=("a2", "a3"), flags=("needs_review",))
CODED = AdministrationOutcome("a1", OutcomeKind.CODED, "coded", "", ("96374",))
ROUTE = AdministrationOutcome("a4", OutcomeKind.NEEDS_REVIEW, "unmapped_route", "")
CLASS = AdministrationOutcome("a2", OutcomeKind.NEEDS_REVIEW, "unknown_class", "")


def test_nothing_flagged_and_no_outcome_needing_review_needs_none() -> None:
    need = review_need([LINE], [CODED])
    assert not need.needed and need.reasons == () and need.administration_ids == ()


def test_outcomes_and_flagged_lines_are_counted_by_reason() -> None:
    need = review_need([LINE, FLAGGED], [CODED, ROUTE, CLASS, replace(ROUTE, administration_id="a5")])
    assert need.needed and need.flagged_lines == 1
    assert need.reasons == (("unmapped_route", 2), ("flagged_line", 1), ("unknown_class", 1))
    assert need.administration_ids == ("a2", "a3", "a4", "a5")  # outcomes, and those behind the flagged line


def test_the_basis_ignores_order_and_changes_with_lines_flags_and_outcomes() -> None:
    basis = review_basis([LINE, FLAGGED], [CODED, ROUTE])
    assert basis == review_basis([FLAGGED, LINE], [ROUTE, CODED]) and basis.startswith("rb-")
    changed = [
        review_basis([LINE], [CODED, ROUTE]),  # a line credited
        review_basis([LINE, replace(FLAGGED, line_id="ln-3")], [CODED, ROUTE]),  # a rebill: another line id
        review_basis([LINE, replace(FLAGGED, flags=())], [CODED, ROUTE]),  # a flag gone
        review_basis([LINE, FLAGGED], [CODED, ROUTE, replace(CODED, administration_id="a9")]),  # a new administration
        review_basis([LINE, FLAGGED], [CODED, replace(ROUTE, reason="unmapped_drug")]),  # another reason
        # a corrected administration still needing review for the same reason: other times, route, source
        review_basis([LINE, FLAGGED], [CODED, replace(ROUTE, detail="started 09:10-05:00")]),
        review_basis([LINE, FLAGGED], [CODED, replace(ROUTE, unmapped=(Unmapped("route", "", "IVSLOW2", "RXR-1"),))]),
        review_basis([LINE, FLAGGED], [CODED, replace(ROUTE, source=SourceRef("hl7v2", "msg-2"))]),
    ]
    assert basis not in changed and len(set(changed)) == len(changed)


def test_a_mark_is_current_while_the_basis_holds_and_needs_an_aware_time() -> None:
    need = review_need([FLAGGED], [CLASS])
    mark = ReviewMark("FAC|V1", datetime(2026, 3, 4, tzinfo=UTC), "analyst", "ok", need.basis)
    assert is_current(mark, need) and not is_current(mark, review_need([FLAGGED], [CLASS, ROUTE]))
    with pytest.raises(ValueError, match="aware"):
        ReviewMark("FAC|V1", datetime(2026, 3, 4), "analyst", "ok", need.basis)  # naive on purpose


def test_a_note_is_trimmed_with_plain_line_ends_and_its_limits_are_checked() -> None:
    assert check_note("  first\r\nsecond\rthird\t \n") == "first\nsecond\nthird"
    assert check_note("x" * NOTE_MAX) == "x" * NOTE_MAX
    for bad, says in [("", "Write a note"), (" \n\t", "Write a note"), ("x" * (NOTE_MAX + 1), "longer than"),
                      ("bell\x07", "control character"), ("nul\x00", "control character")]:  # fmt: skip
        with pytest.raises(ValueError, match=says) as raised:
            check_note(bad)
        assert bad.strip() == "" or bad not in str(raised.value)
