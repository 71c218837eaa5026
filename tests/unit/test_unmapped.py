"""`ivpush unmapped`: local codes counted from outcomes, as a table and as mapping-file entries."""

import yaml

from connector.cli.local_codes import LocalCode, table, tally
from connector.cli.unmapped_yaml import yaml_text
from connector.model import AdministrationOutcome, OutcomeKind, SourceRef, Unmapped

ROUTE = Unmapped("route", "L", "IVPU", "RXR-1")
FHIR_ROUTE = Unmapped("route", "L", "IVPU", "dosage.route")
METHOD_TEXT = Unmapped("method", "", "slow drip", "RXR-4/RXR-3")
DRUG_CODE = Unmapped("drug", "LOCALRX", "999", "RXA-5")
DRUG_TEXT = Unmapped("drug", "", "Zapomab 10 mg", "RXA-5")
PAYER = Unmapped("payer", "", "ACME HEALTH", "IN1-2/IN1-3/IN1-4")
NO_ROUTE = Unmapped("route", "", "", "RXR-1")
PAYERS = ["aetna", "bcbs", "default", "medicare"]


def outcome(n: int, *unmapped: Unmapped, source: SourceRef | None = None) -> AdministrationOutcome:
    where = source or SourceRef("hl7v2", f"M{n}", f"byte {n * 100}", "feed.hl7")
    return AdministrationOutcome(f"a{n}", OutcomeKind.NEEDS_REVIEW, "unmapped_route", "", (), where, (), unmapped)


def test_codes_are_counted_per_administration_most_seen_first_with_fields_and_the_first_sample() -> None:
    codes = tally(
        [
            outcome(1, DRUG_CODE),
            outcome(2, ROUTE, ROUTE),  # named twice in one outcome: one administration
            outcome(3, FHIR_ROUTE, source=SourceRef("fhir", "MedicationAdministration/x", "line 2", "b.ndjson")),
            outcome(4, PAYER),
            outcome(5, PAYER, DRUG_CODE),
            outcome(6, ROUTE),
        ]
    )
    assert [(c.kind, c.code, c.count) for c in codes] == [
        ("route", "IVPU", 3),
        ("drug", "999", 2),
        ("payer", "ACME HEALTH", 2),
    ]
    assert codes[0].fields == ("RXR-1", "dosage.route")
    assert codes[0].sample == SourceRef("hl7v2", "M2", "byte 200", "feed.hl7")
    assert tally([outcome(1)]) == []


def test_the_table_shows_counts_codes_fields_and_a_sample_source_and_no_patient_data() -> None:
    text = table(tally([outcome(1, ROUTE), outcome(2, ROUTE), outcome(3, NO_ROUTE)]))
    rows = text.splitlines()
    assert rows[0].split() == ["count", "kind", "system", "code", "field", "sample", "source"]
    assert rows[1].split()[:5] == ["2", "route", "L", "IVPU", "RXR-1"]
    assert rows[1].endswith("feed.hl7 byte 100, message M1")
    assert "(none sent)" in rows[2]
    assert table([]) == "No local codes missing from the mappings."


def test_yaml_has_one_document_per_mapping_file_in_its_shape_with_placeholders() -> None:
    codes = tally([outcome(1, ROUTE, METHOD_TEXT, DRUG_CODE), outcome(2, DRUG_TEXT, PAYER), outcome(3, NO_ROUTE)])
    text = yaml_text(codes, PAYERS)
    routes, methods, drugs, payer_map = yaml.safe_load_all(text)
    assert routes["meta"]["name"] == "routes"
    assert routes["codes"] == [{"system": "L", "code": "IVPU", "route": "<iv | im | sq | other>", "reference": ANY}]
    assert methods["texts"] == [{"text": "slow drip", "method": "<push | infusion>", "reference": ANY}]
    assert drugs["local_codes"][0]["system"] == "LOCALRX" and drugs["local_codes"][0]["code"] == "999"
    assert drugs["local_codes"][0]["ingredient"].startswith("<")
    (entry,) = drugs["entries"]
    assert entry["names"] == ["Zapomab 10 mg"] and entry["billing_class"].startswith("<therapeutic")
    assert set(payer_map["entries"][0]) == {"id", "payer", "effective_from", "reference"}
    assert payer_map["entries"][0]["id"] == "ACME HEALTH"
    assert payer_map["entries"][0]["payer"] == "<aetna | bcbs | default | medicare>"
    assert "# 1 administration(s) sent no route (RXR-1): nothing to map." in text
    assert "# 1 administration(s); RXR-1; e.g. feed.hl7 byte 100, message M1" in text


def test_yaml_of_nothing_is_a_comment() -> None:
    assert yaml.safe_load(yaml_text([], PAYERS)) is None
    missing = [LocalCode("route", "", "", 2, ("RXR-1",), SourceRef("hl7v2"))]
    assert yaml_text(missing, PAYERS) == "# 2 administration(s) sent no route (RXR-1): nothing to map."


class _Any:
    """Equal to any placeholder."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith("<")


ANY = _Any()
