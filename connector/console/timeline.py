"""The encounter timeline as geometry for a server-side SVG: lanes, marks, bars, shaded windows, ticks.

One lane per drug (the rules' drug identity, else the drug as sent), in order of first use.
A push, an injection or an administration that was not a timed service is a mark at its start;
an infusion or hydration with a documented duration is a bar from start to stop. Around every
administration behind a line (the *reported* ones the push rules compare with) the payer's
same-drug interval (``same_drug_min_interval_minutes``, 30 by default) is shaded on both sides
in its lane: a push of the same drug starting inside it gets no line (``within_interval``).

Pure: no I/O, no clock. The template draws what this computes; the texts (titles) are given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.model import Administration, AdministrationOutcome, Decision, ServiceKind

WIDTH = 960.0
LEFT = 180.0  # lane labels
RIGHT = 24.0
TOP = 8.0
LANE = 40.0
AXIS = 34.0
MARK_RADIUS = 7.0
MIN_BAR = 3.0
TIMED = (ServiceKind.INFUSION, ServiceKind.CHEMO_INFUSION, ServiceKind.HYDRATION)
STEPS = (5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)  # tick spacing, minutes
MAX_TICKS = 10


@dataclass(frozen=True, slots=True)
class Lane:
    """A drug's lane: its label and vertical place."""

    label: str
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class Mark:
    """One administration: a mark (``bar`` false) at ``x``, or a bar from ``x`` to ``x2``."""

    admin_id: str
    anchor: str  # the id of its row in the table under the picture
    outcome: str  # coded, no_line, needs_review
    bar: bool
    x: float
    x2: float
    y: float
    height: float
    title: str

    @property
    def width(self) -> float:
        """The bar's width (at least ``MIN_BAR``)."""
        return max(self.x2 - self.x, MIN_BAR)

    @property
    def cy(self) -> float:
        """The vertical centre of the mark."""
        return self.y + self.height / 2


@dataclass(frozen=True, slots=True)
class Window:
    """The shaded interval around a reported administration."""

    admin_id: str
    x: float
    width: float
    y: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    """A time on the axis."""

    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """Everything the SVG draws."""

    width: float
    height: float
    left: float
    axis_y: float
    lanes: tuple[Lane, ...]
    windows: tuple[Window, ...]
    marks: tuple[Mark, ...]
    ticks: tuple[Tick, ...]
    limit: int


def service_end(admin: Administration) -> datetime:
    """The documented stop (or start plus the documented minutes), else the start."""
    end = admin.end
    if end is None and admin.infuse_minutes:
        end = admin.start + timedelta(minutes=admin.infuse_minutes)
    return end if end is not None and end >= admin.start else admin.start


def build(
    administrations: Sequence[Administration],
    decisions: Mapping[str, Decision],
    outcomes: Mapping[str, AdministrationOutcome],
    titles: Mapping[str, str],
    anchors: Mapping[str, str],
    limit: int,
) -> Timeline:
    """The timeline of an encounter's administrations (in their time order).

    Args:
        administrations: The encounter's administrations.
        decisions: The rules' decision per administration id (kind and drug identity).
        outcomes: The outcome per administration id (colour; behind a line or not).
        titles: The text shown on hover and focus, per administration id.
        anchors: The id of each administration's row in the table, per administration id.
        limit: The payer's same-drug interval in minutes (the shaded half-width).
    """
    lanes: dict[str, int] = {}
    for admin in administrations:
        lanes.setdefault(_lane_key(admin, decisions.get(admin.id)), len(lanes))
    reach = timedelta(minutes=limit)
    spans = []
    for admin in administrations:
        start, end = admin.start, service_end(admin)
        if _reported(outcomes.get(admin.id)):
            start, end = start - reach, end + reach
        spans.append((start, end))
    first = min((s for s, _ in spans), default=None)
    last = max((e for _, e in spans), default=None)
    if first is None or last is None:
        return Timeline(WIDTH, TOP + AXIS, LEFT, TOP, (), (), (), (), limit)
    if last <= first:
        last = first + timedelta(minutes=10)
    pad = (last - first) * 0.03
    first, last = first - pad, last + pad
    span = (last - first).total_seconds()

    def x_of(moment: datetime) -> float:
        return round(LEFT + (moment - first).total_seconds() / span * (WIDTH - LEFT - RIGHT), 2)

    marks, windows = [], []
    for admin in administrations:
        lane = lanes[_lane_key(admin, decisions.get(admin.id))]
        y = TOP + lane * LANE
        outcome = outcomes.get(admin.id)
        decision = decisions.get(admin.id)
        end = service_end(admin)
        bar = decision is not None and decision.kind in TIMED and end > admin.start
        kind = outcome.outcome.value if outcome is not None else "none"
        title = titles.get(admin.id, admin.id)
        marks.append(
            Mark(admin.id, anchors.get(admin.id, ""), kind, bar, x_of(admin.start), x_of(end), y + 10, LANE - 20, title)
        )
        if _reported(outcome):
            left, right = x_of(admin.start - reach), x_of(end + reach)
            text = f"{limit}-minute window around reported {admin.id}: a repeat of the same drug inside it gets no line"
            windows.append(Window(admin.id, left, round(right - left, 2), y + 2, LANE - 4, text))
    axis_y = TOP + len(lanes) * LANE
    lane_rows = tuple(Lane(label, TOP + i * LANE, LANE) for label, i in lanes.items())
    ticks = _ticks(first, last, x_of, administrations[0].start)
    return Timeline(WIDTH, axis_y + AXIS, LEFT, axis_y, lane_rows, tuple(windows), tuple(marks), ticks, limit)


def _lane_key(admin: Administration, decision: Decision | None) -> str:
    if decision is not None and decision.drug_key:
        return decision.drug_key
    return admin.drug.text or ",".join(c.code for c in admin.drug.codings) or "(no drug)"


def _reported(outcome: AdministrationOutcome | None) -> bool:
    """Behind a line: what the push rules compare a repeat of the same drug with."""
    return outcome is not None and bool(outcome.codes)


def _ticks(first: datetime, last: datetime, x_of: Callable[[datetime], float], local: datetime) -> tuple[Tick, ...]:
    """Round local times every few minutes or hours, at most ``MAX_TICKS``; the date where it changes."""
    zone = local.tzinfo
    total = (last - first).total_seconds() / 60.0
    step = next((s for s in STEPS if total / s <= MAX_TICKS), STEPS[-1])
    start = first.astimezone(zone)
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = (start - midnight).total_seconds() / 60.0
    moment = midnight + timedelta(minutes=(offset // step + 1) * step)
    out: list[Tick] = []
    day = None
    while moment < last and len(out) <= MAX_TICKS:
        label = moment.strftime("%H:%M")
        if moment.date() != day:
            label = moment.strftime("%m-%d %H:%M") if day is not None or step >= 720 else label
            day = moment.date()
        out.append(Tick(x_of(moment), label))
        moment += timedelta(minutes=step)
    return tuple(out)
