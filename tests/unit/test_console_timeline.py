"""The console's timeline geometry: a lane per drug, marks and bars, shaded windows, ticks."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector.adapters.scenario import load_scenarios
from connector.console import timeline
from connector.model import Administration, AdministrationOutcome, CodedValue, Decision, OutcomeKind, Reason
from connector.model import ServiceKind as Kind
from connector.policy.model import Policy
from connector.rules import evaluate
from connector.rules.outcomes import outcomes

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def admin(admin_id: str, drug: str, minute: int, length: int | None = None) -> Administration:
    start = T0 + timedelta(minutes=minute)
    end = start + timedelta(minutes=length) if length is not None else None
    return Administration(admin_id, "E|1", CodedValue(text=drug), start, end=end)


def outcome(admin_id: str, kind: OutcomeKind, codes: tuple[str, ...] = ()) -> AdministrationOutcome:
    return AdministrationOutcome(admin_id, kind, kind.value, "why", codes)


def test_pushes_are_marks_infusions_bars_and_reported_ones_get_a_window_of_the_interval_each_side() -> None:
    admins = [admin("a1", "Ondansetron", 0), admin("a2", "Ondansetron", 20), admin("a3", "Saline", 5, 60)]
    decisions = {
        "a1": Decision("a1", Kind.PUSH, "ondansetron", Reason.CODED, ""),
        "a2": Decision("a2", Kind.PUSH, "ondansetron", Reason.WITHIN_INTERVAL, ""),
        "a3": Decision("a3", Kind.HYDRATION, "sodium chloride", Reason.CODED, ""),
    }
    found = {
        "a1": outcome("a1", OutcomeKind.CODED, ("96374",)),
        "a2": outcome("a2", OutcomeKind.NO_LINE),
        "a3": outcome("a3", OutcomeKind.CODED, ("96361",)),
    }
    titles = {"a1": "first", "a2": "second", "a3": "third"}
    anchors = {"a1": "adm-1", "a2": "adm-2", "a3": "adm-3"}
    picture = timeline.build(admins, decisions, found, titles, anchors, 30)

    assert [lane.label for lane in picture.lanes] == ["ondansetron", "sodium chloride"]
    marks = {m.admin_id: m for m in picture.marks}
    assert [m.bar for m in picture.marks] == [False, False, True]
    assert marks["a1"].y == marks["a2"].y != marks["a3"].y
    assert marks["a1"].x < marks["a3"].x < marks["a2"].x < marks["a3"].x2
    assert (marks["a2"].outcome, marks["a2"].title, marks["a2"].anchor) == ("no_line", "second", "adm-2")
    windows = {w.admin_id: w for w in picture.windows}
    assert set(windows) == {"a1", "a3"}  # only what is behind a line
    scale = (marks["a3"].x2 - marks["a3"].x) / 60  # pixels per minute
    assert abs(windows["a1"].width - 60 * scale) < 0.05
    assert abs(windows["a1"].x - (marks["a1"].x - 30 * scale)) < 0.05
    assert windows["a1"].x < marks["a2"].x < windows["a1"].x + windows["a1"].width  # a2 fell inside: no line
    assert abs(windows["a3"].width - 120 * scale) < 0.05
    assert all(picture.left <= m.x <= picture.width for m in picture.marks)
    labels = [tick.label for tick in picture.ticks]
    assert labels and all(len(label) == 5 for label in labels)  # HH:MM on one day
    assert [tick.x for tick in picture.ticks] == sorted(tick.x for tick in picture.ticks)


def test_an_encounter_across_midnight_dates_its_ticks_and_an_empty_one_draws_nothing() -> None:
    admins = [admin("a1", "X", 0), admin("a2", "X", 60 * 20)]
    picture = timeline.build(admins, {}, {}, {}, {}, 30)
    assert len(picture.lanes) == 1 and not picture.windows
    assert any("-" in tick.label for tick in picture.ticks)  # the date where the day changes
    assert len(picture.ticks) <= timeline.MAX_TICKS + 1
    empty = timeline.build([], {}, {}, {}, {}, 30)
    assert not empty.marks and not empty.lanes and not empty.ticks


def test_the_demo_scenarios_draw_one_mark_per_administration_and_a_window_per_reported_one(policy: Policy) -> None:
    for scenario in load_scenarios(ROOT / "examples" / "demo-encounters.yaml"):
        encounter = scenario.encounter
        result = evaluate(encounter, policy)
        found = {o.administration_id: o for o in outcomes(encounter, result, policy)}
        decisions = {d.administration_id: d for d in result.decisions}
        limit = policy.payer(result.policy).same_drug_min_interval_minutes
        picture = timeline.build(encounter.administrations, decisions, found, {}, {}, limit)
        assert [m.admin_id for m in picture.marks] == [a.id for a in encounter.administrations]
        assert len(picture.windows) == sum(1 for o in found.values() if o.codes)
        assert {m.outcome for m in picture.marks} <= {"coded", "no_line", "needs_review"}
        assert len(picture.lanes) == len({d.drug_key for d in result.decisions})
