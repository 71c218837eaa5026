"""The text of `ivpush explain`: outcomes, sources, differences, history, rejects; and where records come from."""

import json
from datetime import UTC, date, datetime, timedelta, timezone

from connector.adapters.archive import Record
from connector.adapters.dispatch import read_record
from connector.cli import explain_render as render
from connector.model import (
    Administration,
    AdministrationOutcome,
    ChargeLine,
    ChargeResult,
    ClaimType,
    CodedValue,
    Encounter,
    HistoryEntry,
    OutcomeKind,
    PatientClass,
    SourceRef,
    Unmapped,
)
from connector.policy.model import Policy

EST = timezone(timedelta(hours=-5))
HL7_SOURCE = SourceRef("hl7v2", "MSG1", "byte 120", "feed.hl7")


def outcome(kind: OutcomeKind, reason: str, codes: tuple[str, ...] = (), **extra: object) -> AdministrationOutcome:
    return AdministrationOutcome("a1", kind, reason, "Why.", codes, HL7_SOURCE, **extra)  # type: ignore[arg-type]


def test_each_outcome_kind_reads_as_coded_no_line_or_needs_review() -> None:
    assert render.verdict(outcome(OutcomeKind.CODED, "coded", ("96374",))) == "coded → 96374"
    assert render.verdict(outcome(OutcomeKind.NO_LINE, "within_interval")) == "no line (within_interval)"
    assert render.verdict(outcome(OutcomeKind.NEEDS_REVIEW, "unmapped_route")) == "needs review (unmapped_route)"
    flagged = outcome(OutcomeKind.NEEDS_REVIEW, "unmapped_payer", ("96365", "96366"))
    assert render.verdict(flagged) == "needs review (unmapped_payer) → 96365, 96366"


def test_a_source_names_file_position_and_message_or_resource() -> None:
    assert render.source_text(HL7_SOURCE) == "feed.hl7 byte 120, message MSG1"
    fhir = SourceRef("fhir", "MedicationAdministration/m1", "line 3", "bulk.ndjson")
    assert render.source_text(fhir) == "bulk.ndjson line 3, resource MedicationAdministration/m1"
    assert render.source_text(SourceRef("hl7v2", "MSG1")) == "message MSG1"
    assert render.source_text(SourceRef("scenario", "cases.yaml#2")) == "scenario cases.yaml#2"
    assert render.source_text(SourceRef("unknown")) == "unknown (position not recorded)"


def test_an_outcome_shows_its_detail_source_unmapped_codes_and_mapping_entries() -> None:
    found = outcome(
        OutcomeKind.NEEDS_REVIEW,
        "unmapped_route",
        mappings=("mappings/drugs.yaml:16",),
        unmapped=(Unmapped("route", "L", "IVPU", "RXR-1"), Unmapped("payer", "", "ACME", "IN1-3")),
    )
    assert render.outcome_text(found) == [
        "        needs review (unmapped_route): Why.",
        "        source: feed.hl7 byte 120, message MSG1",
        "        not in the mappings: route L|IVPU (RXR-1)",
        "        not in the mappings: payer 'ACME' (IN1-3)",
        "        mappings: mappings/drugs.yaml:16",
    ]


def test_the_encounter_text_has_the_header_each_administration_in_local_time_and_the_lines() -> None:
    start = datetime(2026, 3, 2, 23, 30, tzinfo=EST)
    admin = Administration("a1", "H|V1", CodedValue(text="Ondansetron 4 mg"), start, source=HL7_SOURCE)
    encounter = Encounter("H|V1", PatientClass.UNKNOWN, administrations=(admin,), payer_ids=("ACME",))
    line = ChargeLine("ln-1", "96374", 1, date(2026, 3, 2), (), "0450", "IVP96374", ("a1",), "initial.push", "Push.")
    result = ChargeResult(
        "H|V1",
        ClaimType.FACILITY,
        "default",
        "cpt-2026.1/facility",
        (line,),
        (),
        patient_class=PatientClass.OUTPATIENT,
        place_of_service="22",
        mappings=("mappings/places_of_service.yaml:9",),
    )
    text = render.encounter_text(encounter, result, [outcome(OutcomeKind.CODED, "coded", ("96374",))])
    assert text[:4] == [
        "Encounter H|V1",
        "  class outpatient (the feed: unknown), facility claim, payer default (policy cpt-2026.1/facility), "
        "place of service 22",
        "  coverage identifiers: ACME",
        "  encounter mappings: mappings/places_of_service.yaml:9",
    ]
    assert "    2026-03-02 23:30-05:00  a1         Ondansetron 4 mg" in text
    assert "        coded → 96374: Why." in text
    assert any(t.startswith("    2026-03-02  96374 x1  rev 0450  IVP96374  rule initial.push  [a1]") for t in text)


def test_stored_outcomes_that_differ_are_listed_and_equal_ones_are_not() -> None:
    now = [outcome(OutcomeKind.CODED, "coded", ("96374",))]
    assert render.differences(now, now) == []
    stored = [outcome(OutcomeKind.NEEDS_REVIEW, "unmapped_route")]
    assert render.differences(stored, now)[1:] == ["    a1: stored needs review (unmapped_route), now coded → 96374"]
    assert "none stored" in render.differences([], now)[1]


def test_history_shows_sequence_utc_time_cause_message_and_each_line() -> None:
    body = {
        "message_id": "msg-1",
        "policy_version": "medicare-2026.1/facility",
        "encounter": {"patient_id": "MRN0001"},
        "lines": [
            {"action": "credit", "code": "96375", "units": 1, "service_date": "2026-03-02", "line_id": "ln-a",
             "reason": "Was a push."},
            {"action": "charge", "code": "96374", "units": 1, "service_date": "2026-03-02", "line_id": "ln-b",
             "reason": "Initial push."},
        ],
    }  # fmt: skip
    at = datetime(2026, 3, 2, 15, 0, 5, tzinfo=UTC).timestamp()
    text = render.history([HistoryEntry("H|V1", 1, "msg-1", at, "change", json.dumps(body).encode())])
    assert text == [
        "  Messages emitted (1):",
        "    #1  2026-03-02T15:00:05Z  change  msg-1 policy medicare-2026.1/facility",
        "        credit 96375 x1 2026-03-02 ln-a: Was a push.",
        "        charge 96374 x1 2026-03-02 ln-b: Initial push.",
    ]
    assert "MRN0001" not in "\n".join(text)
    assert render.history([]) == ["  Messages emitted: none"]
    assert render.history([HistoryEntry("H|V1", 0, "msg-0", at, "close", b"not json")])[-1].endswith("not readable)")


def test_rejects_name_code_source_and_position_or_the_encounter() -> None:
    entries: list[dict[str, str | None]] = [
        {"source": "a.hl7", "position": "byte 0", "code": "unsupported_message_type", "detail": "MSH-9 is DFT"},
        {"source": None, "position": None, "encounter": "H|V1", "code": "coding_failed", "detail": "rules: KeyError"},
    ]
    assert render.rejects(entries) == [
        "Rejects (2):",
        "  unsupported_message_type  a.hl7 byte 0: MSH-9 is DFT",
        "  coding_failed  encounter H|V1: rules: KeyError",
    ]
    assert render.rejects([]) == ["Rejects: none"]


def test_a_record_read_names_its_file_and_position_in_each_administration(policy: Policy) -> None:
    message = (
        b"MSH|^~\\&|EPIC|GENHOSP|IVPUSH|GENHOSP|20260302101500-0500||RAS^O17^RAS_O17|E0001|P|2.5.1\r"
        b"PID|1||MRN0001^^^GENHOSP^MR\r"
        b"PV1|1|E|ED^B12^01^GENHOSP||||||||||||||||V1001^^^GENHOSP^VN\r"
        b"ORC|RE|ORD100^EPC|FIL100^EPC\r"
        b"RXA|0|1|20260302101500||313002^ondansetron 2 MG/ML Injectable Solution^RXNORM|4|mg|||||||||||||CP\r"
        b"RXR|IV^Intravenous^HL70162|||IVP^IV Push^HL70165"
    )
    found = read_record(Record("feed.hl7", "byte 358", "hl7", message), policy, UTC, 1 << 20)
    (admin,) = found.records[0].administrations
    assert admin.source == SourceRef("hl7v2", "E0001", "byte 358", "feed.hl7")
