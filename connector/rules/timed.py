"""Step 3: infusion and hydration codes (coding rules §2, §4, §6).

- Initial infusion 96365 (chemo 96413) covers up to 90 minutes; each additional hour
  96366 (chemo 96415) needs more than 30 minutes beyond the hour (UWHC; Ohio HIMA Part 5).
- Infusions of the same drug add their minutes together (ICD10monitor, "each bag hung").
- A sequential infusion of a new drug → 96367 (chemo 96417), its further hours → 96366
  (chemo 96415); infusions of different drugs running at the same time → 96368, once per
  encounter.
- Hydration is reportable from 31 minutes: 96360 when initial (+96361 per additional hour),
  otherwise 96361 per hour, each unit needing more than 30 minutes. Minutes overlapping
  another infusion and documented push minutes are not hydration time (MedLearn 2021-11-15).
- Hourly units are dated on the day each hour is provided, across midnight (CPT intro).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from connector.model import Decision, Reason, ServiceKind
from connector.rules import timeline
from connector.rules.classify import Service
from connector.rules.describe import services as describe_all
from connector.rules.describe import unmapped_flags
from connector.rules.initial import Candidate, InitialChoice
from connector.rules.units import Unit

INITIAL = {ServiceKind.INFUSION: "96365", ServiceKind.CHEMO_INFUSION: "96413"}
ADDITIONAL_HOUR = {ServiceKind.INFUSION: "96366", ServiceKind.CHEMO_INFUSION: "96415"}
SEQUENTIAL = {ServiceKind.INFUSION: "96367", ServiceKind.CHEMO_INFUSION: "96417"}
CONCURRENT = "96368"
HYDRATION_INITIAL = "96360"
HYDRATION_HOUR = "96361"
HYDRATION_MIN_MINUTES = 31.0


@dataclass(slots=True)
class TimedCoding:
    """Units from timed services, the services now reported, and final non-line decisions."""

    units: list[Unit] = field(default_factory=list)
    reported: list[Service] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


def hydration_timeline(
    hydration: Sequence[Service], infusions: Sequence[Service], pushes: Sequence[Service]
) -> list[timeline.Interval]:
    """Net hydration time: hydration minus other infusions and documented push minutes."""
    if not hydration:
        return []
    base = timeline.merge([(s.start, s.end) for s in hydration])
    removed = timeline.merge(
        [(s.start, s.end) for s in infusions] + [(s.start, s.end) for s in pushes if s.end > s.start]
    )
    return timeline.subtract(base, removed)


class _Group(NamedTuple):
    """What every unit of one coded group shares: who, where, how long, and its description."""

    members: Sequence[Service]
    ids: tuple[str, ...]
    spans: list[timeline.Interval]
    total: float
    described: str
    flags: tuple[str, ...]
    department: str


def _group(members: Sequence[Service], spans: list[timeline.Interval]) -> _Group:
    return _Group(
        members,
        tuple([m.admin.id for m in members]),
        spans,
        timeline.minutes(spans),
        describe_all(members),
        unmapped_flags(members),
        members[0].admin.department,
    )


def _hours(code: str, group: _Group, first: int, count: int, what: str) -> list[Unit]:
    if count <= 0:
        return []
    reason = f"Hourly units of {what}: {group.total:g} min in total ({group.described})."
    ids, spans, department, flags = group.ids, group.spans, group.department, group.flags
    return [
        Unit(code, timeline.day_at(spans, 60.0 * (first + j)), ids, f"hours.{code}", reason, department, (), flags)
        for j in range(count)
    ]


def code_infusions(groups: Sequence[Candidate], choice: InitialChoice, modifier: str) -> TimedCoding:
    """Code infusion drug groups: the initial one first, then the rest in time order."""
    out = TimedCoding()
    if not groups:
        return out
    seconds = {id(c) for c in choice.second_sites}
    ordered = sorted(groups, key=lambda g: (g is not choice.main, g.start, g.first.admin.id))
    coded: list[tuple[Candidate, list[timeline.Interval]]] = []
    concurrent_used = False
    for candidate in ordered:
        members = candidate.members
        group = _group(members, timeline.merge([(m.start, m.end) for m in members]))
        spans, total, ids, dept, flags = group.spans, group.total, group.ids, group.department, group.flags
        day = candidate.start.date()
        label = f"the {candidate.first.drug.key} infusion"
        if candidate is choice.main or id(candidate) in seconds:
            mods = (modifier,) if id(candidate) in seconds else ()
            reason = f"Initial infusion {group.described}, {total:g} min: {choice.why}."
            if mods:
                reason = f"Initial infusion at a separate access site {group.described}, {total:g} min."
            out.units.append(Unit(INITIAL[candidate.kind], day, ids, "initial.infusion", reason, dept, mods, flags))
            out.units.extend(_hours(ADDITIONAL_HOUR[candidate.kind], group, 1, timeline.hour_units(total - 60), label))
        else:
            running_with = [c for c, c_spans in coded if timeline.overlaps(spans, c_spans)]
            if running_with:
                other = running_with[0].first
                if concurrent_used:
                    text = (
                        f"Concurrent infusion: 96368 is reported once per encounter (already used); "
                        f"runs with {other.admin.id}."
                    )
                    out.decisions.extend(
                        Decision(m.admin.id, m.kind, m.drug.key, Reason.CONCURRENT_LIMIT, text) for m in members
                    )
                    continue
                concurrent_used = True
                out.units.append(
                    Unit(
                        CONCURRENT,
                        day,
                        ids,
                        "concurrent.infusion",
                        f"Concurrent infusion {group.described} running with {other.admin.id} ({other.drug.key}).",
                        dept,
                        (),
                        flags,
                    )
                )
            else:
                out.units.append(
                    Unit(
                        SEQUENTIAL[candidate.kind],
                        day,
                        ids,
                        "sequential.infusion",
                        f"Sequential infusion of a new drug {group.described}, {total:g} min.",
                        dept,
                        (),
                        flags,
                    )
                )
                out.units.extend(
                    _hours(ADDITIONAL_HOUR[candidate.kind], group, 1, timeline.hour_units(total - 60), label)
                )
        coded.append((candidate, spans))
        out.reported.extend(members)
    return out


def code_hydration(members: Sequence[Service], spans: list[timeline.Interval], is_initial: bool) -> TimedCoding:
    """Code hydration from its net timeline."""
    out = TimedCoding()
    if not members:
        return out
    total = timeline.minutes(spans)
    if total < HYDRATION_MIN_MINUTES:
        text = f"Hydration of {total:g} net minutes: reportable only from 31 minutes."
        out.decisions.extend(
            Decision(m.admin.id, ServiceKind.HYDRATION, m.drug.key, Reason.HYDRATION_UNDER_31, text) for m in members
        )
        return out
    group = _group(members, spans)
    if is_initial:
        out.units.append(
            Unit(
                HYDRATION_INITIAL,
                timeline.day_at(spans, 0),
                group.ids,
                "initial.hydration",
                f"Initial hydration {group.described}, {total:g} net min: no higher service.",
                group.department,
            )
        )
        out.units.extend(_hours(HYDRATION_HOUR, group, 1, timeline.hour_units(total - 60), "hydration"))
    else:
        out.units.extend(_hours(HYDRATION_HOUR, group, 0, timeline.hour_units(total), "secondary hydration"))
    out.reported.extend(members)
    return out
