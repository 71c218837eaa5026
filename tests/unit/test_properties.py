"""Invariant 1: the result is a pure function of the administration set (order, duplicates)."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.model import Administration, AdminStatus, ClaimType, CodedValue, Coding, Encounter, PatientClass
from connector.policy.model import Policy
from connector.rules import evaluate

ZONE = timezone(timedelta(hours=-5))
BASE = datetime(2026, 3, 2, 6, 0, tzinfo=ZONE)
DRUGS = [
    "Ondansetron 4 mg/2 mL injection",
    "Zofran 8 mg IV",
    "Morphine 4 mg/mL inj",
    "HYDROmorphone 1 mg/mL inj",
    "cefTRIAXone 1 g IVPB",
    "Sodium chloride 0.9% 1000 mL",
    "Cyclophosphamide 1,000 mg in NS 250 mL",
    "Study drug XR-17",
]


@st.composite
def administrations(draw: st.DrawFn) -> list[Administration]:
    count = draw(st.integers(min_value=1, max_value=12))
    found = []
    for index in range(count):
        start = BASE + timedelta(minutes=draw(st.integers(0, 36 * 60)))
        length = draw(st.sampled_from([None, 0, 5, 15, 16, 30, 31, 45, 90, 91, 150, 151, 200]))
        push = draw(st.booleans())
        found.append(
            Administration(
                id=f"a{index}",
                encounter_key="E1",
                drug=CodedValue(text=draw(st.sampled_from(DRUGS))),
                start=start,
                end=None if length is None else start + timedelta(minutes=length),
                route=CodedValue((Coding("HL70162", draw(st.sampled_from(["IV", "IV", "IV", "IM"]))),)),
                method=CodedValue((Coding("HL70165", "IVP"),)) if push else CodedValue(),
                status=draw(st.sampled_from([AdminStatus.GIVEN] * 5 + [AdminStatus.NOT_GIVEN])),
                site=draw(st.sampled_from(["", "", "L-ARM", "R-ARM"])),
            )
        )
    return found


def encounter(admins: list[Administration], claim: ClaimType = ClaimType.FACILITY) -> Encounter:
    return Encounter("E1", PatientClass.OBSERVATION, claim_type=claim).with_administrations(admins)


@settings(max_examples=300, deadline=None)
@given(admins=administrations(), data=st.data())
def test_arrival_order_and_duplicates_do_not_change_the_result(
    admins: list[Administration], data: st.DataObject, policy: Policy
) -> None:
    shuffled = data.draw(st.permutations(admins + admins[: data.draw(st.integers(0, len(admins)))]))
    assert evaluate(encounter(admins), policy) == evaluate(encounter(list(shuffled)), policy)


@settings(max_examples=200, deadline=None)
@given(admins=administrations(), data=st.data())
def test_the_latest_version_of_an_administration_wins_whatever_the_order(
    admins: list[Administration], data: st.DataObject, policy: Policy
) -> None:
    target = data.draw(st.sampled_from(admins))
    newer = replace(target, version="2", status=AdminStatus.DELETED)
    arrivals = data.draw(st.permutations([*admins, newer]))
    expected = encounter([a for a in admins if a.id != target.id] + [newer])
    assert evaluate(encounter(list(arrivals)), policy) == evaluate(expected, policy)


@settings(max_examples=200, deadline=None)
@given(admins=administrations())
def test_every_administration_gets_exactly_one_decision_and_every_line_names_its_sources(
    admins: list[Administration], policy: Policy
) -> None:
    result = evaluate(encounter(admins), policy)
    ids = {a.id for a in encounter(admins).administrations}
    assert sorted(d.administration_id for d in result.decisions) == sorted(ids)
    for line in result.lines:
        assert line.units >= 1
        assert line.administration_ids and set(line.administration_ids) <= ids
        assert line.rule and line.reason
        assert "25" not in line.modifiers and "76" not in line.modifiers
    assert len({line.line_id for line in result.lines}) == len(result.lines)


@settings(max_examples=150, deadline=None)
@given(admins=administrations())
def test_one_initial_service_per_encounter_without_second_site_policy(
    admins: list[Administration], policy: Policy
) -> None:
    result = evaluate(encounter(admins), policy)
    initial = [line for line in result.lines if line.code in {"96360", "96365", "96374", "96409", "96413"}]
    assert sum(line.units for line in initial) <= 1


@settings(max_examples=150, deadline=None)
@given(admins=administrations())
def test_professional_claims_never_carry_96376(admins: list[Administration], policy: Policy) -> None:
    result = evaluate(encounter(admins, ClaimType.PROFESSIONAL), policy)
    assert all(line.code != "96376" for line in result.lines)
