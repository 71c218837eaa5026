"""The same encounter written once as HL7 v2 and once as FHIR yields the same administrations and lines."""

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connector.adapters.fhir import parse_fhir
from connector.adapters.hl7v2 import parse_hl7
from connector.model import Administration, CodedValue, Encounter
from connector.policy.model import Policy
from connector.rules import evaluate

PAIRED = Path(__file__).resolve().parents[1] / "samples" / "fhir" / "paired"


def coded(policy: Policy, value: CodedValue) -> tuple[tuple[str, str, str], ...]:
    return tuple((policy.canonical_system(c.system), c.code, c.display) for c in value.codings)


def fields(policy: Policy, admin: Administration) -> tuple[object, ...]:
    return (
        coded(policy, admin.drug),
        admin.drug.text,
        coded(policy, admin.route),
        coded(policy, admin.method),
        admin.start,
        admin.end,
        admin.status,
    )


@pytest.mark.parametrize("name", ["paired-01", "paired-02", "paired-03"])
def test_hl7_and_fhir_renderings_of_one_encounter_agree(name: str, policy: Policy) -> None:
    hl7 = parse_hl7((PAIRED / f"{name}.hl7").read_bytes(), policy, ZoneInfo("America/New_York"))
    fhir = [a for record in parse_fhir((PAIRED / f"{name}.json").read_bytes(), policy) for a in record.administrations]
    from_hl7 = sorted(hl7.administrations, key=lambda a: a.start)
    from_fhir = sorted(fhir, key=lambda a: a.start)
    assert [fields(policy, a) for a in from_hl7] == [fields(policy, a) for a in from_fhir]

    def lines(admins: list[Administration]) -> list[tuple[str, int, str]]:
        result = evaluate(Encounter("E").with_administrations(admins), policy)
        return sorted((ln.code, ln.units, ln.service_date.isoformat()) for ln in result.lines)

    assert lines(from_hl7) == lines(from_fhir)
    assert lines(from_hl7)
