"""Output renderers: DFT^P03 checked against hl7apy (v2.5.1, STRICT), ChargeItem Bundles against fhir.resources R4B."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from ci import import_or_skip
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.chargeitem import ChargeItem

from connector.emitters import chargeitem, dft
from connector.emitters.dft import DftSettings
from connector.emitters.hl7_text import dtm, escape, unescape
from connector.model.charge import ChargeLine
from connector.model.encounter import ClaimType, PatientClass
from connector.model.events import EncounterRef
from connector.model.messages import Action, ChargeMessage, LineAction

hl7apy_parser = import_or_skip("hl7apy.parser")  # a test dependency: its absence fails under CI
hl7apy_consts = import_or_skip("hl7apy.consts")
HL7ValidationError = import_or_skip("hl7apy.exceptions").ValidationError

EST = timezone(timedelta(hours=-5))
AS_OF = datetime(2024, 3, 5, 14, 30, 5, tzinfo=EST)
REF = EncounterRef("HOSP|V123", "V123", "HOSP", "MRN42", "MAIN")
HOSTILE = "A|B^C~D\\E&F"
CPT = "http://www.ama-assn.org/go/cpt"
MODIFIER_URL = "urn:ivpush:fhir:StructureDefinition:cpt-modifier"


def make_line(
    line_id: str,
    code: str,
    units: int = 1,
    day: date = date(2024, 3, 5),
    modifiers: tuple[str, ...] = (),
    administration_ids: tuple[str, ...] = ("adm-1",),
    charge_code: str = "CDM100",
    revenue_code: str = "0260",
) -> ChargeLine:
    return ChargeLine(
        line_id=line_id,
        code=code,
        units=units,
        service_date=day,
        modifiers=modifiers,
        revenue_code=revenue_code,
        charge_code=charge_code,
        administration_ids=administration_ids,
        rule="push.same_drug",
        reason="Two pushes of ondansetron – 15 minutes apart.",
    )


CREDITED = make_line("ln-credited000000000000001", "96374", day=date(2024, 3, 4), charge_code="CDM374")
SEQUENTIAL = make_line(
    "ln-sequential0000000000001",
    "96376",
    units=2,
    modifiers=("XS", "59"),
    administration_ids=("adm-2", "adm-3", "adm-4"),
    charge_code="CDM376",
)
SUBSEQUENT = make_line("ln-subsequent0000000000001", "96375", modifiers=("59",), charge_code="CDM375")


def make_message(
    lines: tuple[LineAction, ...] | None = None,
    ref: EncounterRef = REF,
    patient_class: PatientClass = PatientClass.EMERGENCY,
    message_id: str = "msg-0123456789abcdef01234567",
) -> ChargeMessage:
    if lines is None:
        lines = (
            LineAction(Action.CREDIT, CREDITED),
            LineAction(Action.CHARGE, SEQUENTIAL),
            LineAction(Action.CHARGE, SUBSEQUENT),
        )
    return ChargeMessage(
        message_id=message_id,
        encounter=ref,
        patient_class=patient_class,
        claim_type=ClaimType.FACILITY,
        policy="default",
        policy_version="default@1",
        lines=lines,
        as_of=AS_OF,
    )


# --- HL7 escaping -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plain", "escaped"),
    [
        ("plain", "plain"),
        (HOSTILE, "A\\F\\B\\S\\C\\R\\D\\E\\E\\T\\F"),
        ("\\F\\", "\\E\\F\\E\\"),  # the escape character is escaped first: no double meaning
        ("a\r\nb\nc\rd", "a\\.br\\b\\.br\\c\\.br\\d"),
        ("bell\x07 vt\x0b fs\x1c", "bell\\X07\\ vt\\X0B\\ fs\\X1C\\"),
        ("naïve – ✓", "naïve – ✓"),
    ],
)
def test_escape(plain: str, escaped: str) -> None:
    assert escape(plain) == escaped


@pytest.mark.parametrize("plain", ["", HOSTILE, "\\E\\\\", "x\ny", "tab\there\x00", "|^~\\&" * 3])
def test_unescape_reverses_escape(plain: str) -> None:
    assert unescape(escape(plain)) == plain


def test_dtm_keeps_the_offset() -> None:
    assert dtm(AS_OF) == "20240305143005-0500"
    assert dtm(datetime(2024, 1, 2, 3, 4, 5, 999, tzinfo=timezone(timedelta(hours=5, minutes=30)))) == (
        "20240102030405+0530"
    )
    assert dtm(datetime(2024, 1, 2, tzinfo=UTC)) == "20240102000000+0000"


# --- DFT^P03 ------------------------------------------------------------------------------


def parse_strict(data: bytes) -> Any:
    """Parse a rendered DFT^P03 with hl7apy at STRICT level and validate structure and datatypes.

    PID-5 (required in 2.5.1) is left empty on purpose: no names are carried, and ``""`` would
    tell the receiver to delete the name it has. The copy validated has ``""`` there, nothing else.
    """
    text = data.decode("utf-8")
    assert text.endswith("\r")
    assert "\n" not in text
    strict = hl7apy_consts.VALIDATION_LEVEL.STRICT
    message = hl7apy_parser.parse_message(text, validation_level=strict, find_groups=True)
    named = hl7apy_parser.parse_message(with_pid_5(text), validation_level=strict, find_groups=True)
    assert named.validate() is True
    return message


def with_pid_5(text: str) -> str:
    """The message with an empty PID-5 filled with the HL7 null (to satisfy the validator only)."""
    segments = text.split("\r")
    for index, segment in enumerate(segments):
        fields = segment.split("|")
        if fields[0] == "PID":
            fields += [""] * (6 - len(fields))
            fields[5] = fields[5] or '""'
            segments[index] = "|".join(fields)
    return "\r".join(segments)


def financial_segments(message: Any) -> list[Any]:
    return [group.ft1 for group in message.children if group.name == "DFT_P03_FINANCIAL"]


def raw(text: bytes, segment: str, index: int = 0) -> list[str]:
    """Fields of the index-th segment with that id, split by hand (hl7apy re-escapes some values)."""
    found = [s for s in text.decode("utf-8").split("\r") if s.startswith(segment + "|")]
    return found[index].split("|")


def test_dft_envelope_and_patient() -> None:
    data = dft.render(
        make_message(), DftSettings(receiving_application="CERNER", receiving_facility="HOSP-A", processing_id="T")
    )
    message = parse_strict(data)
    assert [child.name for child in message.children] == [
        "MSH",
        "EVN",
        "PID",
        "PV1",
        "DFT_P03_FINANCIAL",
        "DFT_P03_FINANCIAL",
        "DFT_P03_FINANCIAL",
    ]
    msh = message.msh
    assert msh.msh_3.to_er7() == "IVPUSH"
    assert msh.msh_4.to_er7() == "MAIN"  # no sending facility set: the encounter's facility
    assert msh.msh_5.to_er7() == "CERNER"
    assert msh.msh_6.to_er7() == "HOSP-A"
    assert msh.msh_7.to_er7() == "20240305143005-0500"
    assert msh.msh_9.to_er7() == "DFT^P03^DFT_P03"
    assert msh.msh_10.to_er7() == "msg-0123456789abcdef01234567"
    assert msh.msh_11.to_er7() == "T"
    assert msh.msh_12.to_er7() == "2.5.1"
    assert msh.msh_18.to_er7() == "UNICODE UTF-8"
    assert message.evn.evn_2.to_er7() == "20240305143005-0500"
    assert message.pid.pid_3.cx_1.to_er7() == "MRN42"
    assert message.pid.pid_3.cx_4.to_er7() == "HOSP"
    assert message.pid.pid_5.to_er7() == ""  # empty, not the HL7 null (which means "delete the name")
    assert raw(data, "PID") == ["PID", "1", "", "MRN42^^^HOSP"]
    assert message.pv1.pv1_2.to_er7() == "E"
    assert message.pv1.pv1_19.cx_1.to_er7() == "V123"
    assert message.pv1.pv1_19.cx_4.to_er7() == "HOSP"


def test_dft_sending_facility_setting_wins() -> None:
    message = parse_strict(dft.render(make_message(), DftSettings(sending_facility="IVP-SITE")))
    assert message.msh.msh_4.to_er7() == "IVP-SITE"


def test_dft_financial_lines_credit_line_mode() -> None:
    ft1s = financial_segments(parse_strict(dft.render(make_message())))
    assert [f.ft1_1.to_er7() for f in ft1s] == ["1", "2", "3"]
    assert [f.ft1_2.to_er7() for f in ft1s] == [CREDITED.line_id, SEQUENTIAL.line_id, SUBSEQUENT.line_id]
    assert [f.ft1_4.to_er7() for f in ft1s] == ["20240304", "20240305", "20240305"]
    assert {f.ft1_5.to_er7() for f in ft1s} == {"20240305143005-0500"}
    assert [f.ft1_6.to_er7() for f in ft1s] == ["CD", "CG", "CG"]
    assert [f.ft1_7.to_er7() for f in ft1s] == ["CDM374^96374", "CDM376^96376", "CDM375^96375"]
    assert [f.ft1_7.ce_1.to_er7() for f in ft1s] == ["CDM374", "CDM376", "CDM375"]
    assert [f.ft1_10.to_er7() for f in ft1s] == ["1", "2", "1"]
    assert {f.ft1_18.to_er7() for f in ft1s} == {"E"}
    assert [f.ft1_25.to_er7() for f in ft1s] == ["96374^^C4", "96376^^C4", "96375^^C4"]
    assert [f.ft1_25.ce_3.to_er7() for f in ft1s] == ["C4", "C4", "C4"]
    assert [[r.to_er7() for r in f.ft1_26] for f in ft1s] == [[], ["XS^^C4", "59^^C4"], ["59^^C4"]]
    assert [[r.ce_1.to_er7() for r in f.ft1_26] for f in ft1s] == [[], ["XS", "59"], ["59"]]
    for f in ft1s:  # nothing we do not carry
        assert f.ft1_13.to_er7() == ""
        assert f.ft1_23.to_er7() == ""


def test_dft_negative_quantity_mode() -> None:
    data = dft.render(make_message(), DftSettings(reversal="negative_quantity"))
    ft1s = financial_segments(parse_strict(data))
    assert [f.ft1_6.to_er7() for f in ft1s] == ["CG", "CG", "CG"]
    assert [f.ft1_10.to_er7() for f in ft1s] == ["-1", "2", "1"]
    assert ft1s[0].ft1_2.to_er7() == CREDITED.line_id


def test_dft_reversal_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="reversal"):
        DftSettings(reversal="negative")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("patient_class", "code"),
    [
        (PatientClass.EMERGENCY, "E"),
        (PatientClass.OUTPATIENT, "O"),
        (PatientClass.OBSERVATION, "O"),
        (PatientClass.INPATIENT, "I"),
        (PatientClass.OTHER, "O"),
    ],
)
def test_dft_patient_class(patient_class: PatientClass, code: str) -> None:
    assert dft.PATIENT_CLASS_CODES[patient_class] == code
    message = parse_strict(
        dft.render(make_message((LineAction(Action.CHARGE, SUBSEQUENT),), patient_class=patient_class))
    )
    assert message.pv1.pv1_2.to_er7() == code
    assert financial_segments(message)[0].ft1_18.to_er7() == code


def test_dft_hostile_values_stay_inside_their_fields() -> None:
    line = replace(SEQUENTIAL, line_id="ln-" + HOSTILE, charge_code=HOSTILE, code="963^76", modifiers=("X|S", "5~9"))
    ref = EncounterRef("A&A|V^1", "V^1|x", "A&A", "MRN~" + HOSTILE, "F|ac")
    settings = DftSettings(sending_application="IV^PUSH", receiving_application="R|x", receiving_facility="R~f")
    data = dft.render(make_message((LineAction(Action.CHARGE, line),), ref=ref, message_id="msg|1"), settings)
    message = parse_strict(data)
    assert len(data.decode().split("\r")) == 6  # MSH EVN PID PV1 FT1 + the final terminator
    assert unescape(message.msh.msh_3.to_er7()) == "IV^PUSH"
    assert unescape(message.msh.msh_4.to_er7()) == "F|ac"
    assert unescape(message.msh.msh_5.to_er7()) == "R|x"
    assert unescape(message.msh.msh_6.to_er7()) == "R~f"
    assert unescape(message.msh.msh_10.to_er7()) == "msg|1"
    assert unescape(message.pid.pid_3.cx_1.to_er7()) == "MRN~" + HOSTILE
    assert unescape(message.pid.pid_3.cx_4.to_er7()) == "A&A"
    assert unescape(message.pv1.pv1_19.cx_1.to_er7()) == "V^1|x"
    ft1 = financial_segments(message)[0]
    assert unescape(ft1.ft1_2.to_er7()) == "ln-" + HOSTILE
    assert unescape(ft1.ft1_7.ce_1.to_er7()) == HOSTILE
    assert unescape(ft1.ft1_7.ce_2.to_er7()) == "963^76"
    assert unescape(ft1.ft1_25.ce_1.to_er7()) == "963^76"
    assert [unescape(r.ce_1.to_er7()) for r in ft1.ft1_26] == ["X|S", "5~9"]
    assert ft1.ft1_10.to_er7() == "2"


def test_dft_line_breaks_and_control_characters_are_escaped() -> None:
    line = replace(SUBSEQUENT, charge_code="CDM\r\n375\x0b\x1c")
    data = dft.render(make_message((LineAction(Action.CHARGE, line),)))
    parse_strict(data)
    assert b"\n" not in data
    assert b"\x0b" not in data
    assert b"\x1c" not in data
    fields = raw(data, "FT1")
    assert unescape(fields[7].split("^")[0]) == "CDM\n375\x0b\x1c"


def test_dft_unknown_patient_id_is_the_hl7_null() -> None:
    message = parse_strict(dft.render(make_message(ref=EncounterRef("V9", "V9"))))
    assert message.pid.pid_3.to_er7() == '""'
    assert message.pv1.pv1_19.to_er7() == "V9"
    assert message.msh.msh_4.to_er7() == ""


def test_dft_is_byte_identical_and_segment_terminated() -> None:
    first = dft.render(make_message())
    assert first == dft.render(make_message())
    assert first.startswith(b"MSH|^~\\&|IVPUSH|MAIN|||20240305143005-0500||DFT^P03^DFT_P03|")
    assert first.endswith(b"\r")
    assert raw(first, "MSH")[11:] == ["2.5.1", "", "", "", "", "", "UNICODE UTF-8"]


def test_hl7apy_validation_rejects_a_broken_message() -> None:
    """The oracle bites: a DFT^P03 without FT1-6 is refused."""
    data = dft.render(make_message((LineAction(Action.CHARGE, SUBSEQUENT),)))
    broken = data.replace(b"|CG|", b"||")
    with pytest.raises(HL7ValidationError):
        parse_strict(broken)


# --- FHIR ChargeItem ----------------------------------------------------------------------


def parse_bundle(data: bytes) -> tuple[Bundle, dict[str, Any]]:
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    bundle = Bundle.model_validate_json(data)
    return bundle, json.loads(data)


def charge_items(bundle: Bundle) -> list[ChargeItem]:
    """The entries' resources as fhir.resources models (each must be a ChargeItem)."""
    items = [entry.resource for entry in bundle.entry or []]
    assert all(isinstance(item, ChargeItem) for item in items)
    return [item for item in items if isinstance(item, ChargeItem)]


def resources(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in document["entry"]]


def test_chargeitem_bundle_envelope() -> None:
    bundle, document = parse_bundle(chargeitem.render(make_message()))
    assert bundle.id == "msg-0123456789abcdef01234567"
    assert bundle.type == "transaction"
    assert [item.id for item in charge_items(bundle)] == [CREDITED.line_id, SEQUENTIAL.line_id, SUBSEQUENT.line_id]
    for entry, line in zip(document["entry"], (CREDITED, SEQUENTIAL, SUBSEQUENT), strict=True):
        assert entry["request"] == {"method": "PUT", "url": f"ChargeItem/{line.line_id}"}
        expected = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:ivpush:chargeitem:{line.line_id}")
        assert entry["fullUrl"] == f"urn:uuid:{expected}"
        assert entry["resource"]["id"] == line.line_id
    assert len({entry["fullUrl"] for entry in document["entry"]}) == 3


def test_chargeitem_fields() -> None:
    _, document = parse_bundle(chargeitem.render(make_message()))
    item = resources(document)[1]
    assert item["identifier"] == [{"system": "urn:ivpush:line-id", "value": SEQUENTIAL.line_id}]
    assert item["status"] == "billable"
    assert item["code"] == {"coding": [{"system": CPT, "code": "96376"}]}
    assert item["subject"] == {
        "type": "Patient",
        "identifier": {"system": "urn:ivpush:patient-id", "value": "MRN42", "assigner": {"display": "HOSP"}},
    }
    assert item["context"] == {"reference": "Encounter/V123"}
    assert item["occurrenceDateTime"] == "2024-03-05"
    assert item["quantity"] == {"value": 2}
    assert item["service"] == [
        {"identifier": {"system": "urn:ivpush:administration-id", "value": admin_id}}
        for admin_id in ("adm-2", "adm-3", "adm-4")
    ]
    assert item["note"] == [{"text": "push.same_drug: Two pushes of ondansetron – 15 minutes apart."}]
    assert item["extension"] == [
        {"url": MODIFIER_URL, "valueCoding": {"system": CPT, "code": "XS"}},
        {"url": MODIFIER_URL, "valueCoding": {"system": CPT, "code": "59"}},
        {"url": "urn:ivpush:fhir:StructureDefinition:charge-code", "valueString": "CDM376"},
        {
            "url": "urn:ivpush:fhir:StructureDefinition:revenue-code",
            "valueCoding": {"system": "https://www.nubc.org/CodeSystem/RevenueCodes", "code": "0260"},
        },
    ]


def test_chargeitem_credit_is_entered_in_error() -> None:
    bundle, document = parse_bundle(chargeitem.render(make_message()))
    assert [item.status for item in charge_items(bundle)] == ["entered-in-error", "billable", "billable"]
    credit = resources(document)[0]
    assert credit["id"] == CREDITED.line_id
    assert credit["occurrenceDateTime"] == "2024-03-04"
    assert credit["quantity"] == {"value": 1}


def test_chargeitem_modifiers_only_in_the_extension() -> None:
    _, document = parse_bundle(chargeitem.render(make_message()))
    for item, line in zip(resources(document), (CREDITED, SEQUENTIAL, SUBSEQUENT), strict=True):
        assert item["code"]["coding"] == [{"system": CPT, "code": line.code}]
        modifiers = [ext["valueCoding"]["code"] for ext in item.get("extension", []) if ext["url"] == MODIFIER_URL]
        assert modifiers == list(line.modifiers)
    assert "modifier" not in json.dumps([item["code"] for item in resources(document)])


def test_chargeitem_is_byte_identical_utf8_one_line() -> None:
    first = chargeitem.render(make_message())
    assert first == chargeitem.render(make_message())
    assert "– 15 minutes".encode() in first  # UTF-8, not \\u escapes
    assert first.startswith(b'{"resourceType":"Bundle","id":"msg-0123456789abcdef01234567","type":"transaction"')


def test_chargeitem_references_that_are_not_fhir_ids() -> None:
    ref = EncounterRef("HOSP|V 1/2", "V 1/2", "HOSP", "MRN 42", "MAIN")
    _, document = parse_bundle(chargeitem.render(make_message((LineAction(Action.CHARGE, SUBSEQUENT),), ref=ref)))
    item = resources(document)[0]
    assert item["subject"] == {
        "type": "Patient",
        "identifier": {"system": "urn:ivpush:patient-id", "value": "MRN 42", "assigner": {"display": "HOSP"}},
    }
    assert item["context"] == {"type": "Encounter", "identifier": {"value": "V 1/2", "assigner": {"display": "HOSP"}}}


def test_chargeitem_unknown_patient_is_data_absent() -> None:
    bundle, document = parse_bundle(
        chargeitem.render(make_message((LineAction(Action.CHARGE, SUBSEQUENT),), ref=EncounterRef("V9", "V9")))
    )
    item = resources(document)[0]
    assert item["subject"] == {
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]
    }
    assert item["context"] == {"reference": "Encounter/V9"}
    assert charge_items(bundle)[0].subject is not None


def test_chargeitem_hostile_and_missing_codes() -> None:
    line = replace(SUBSEQUENT, charge_code=HOSTILE + '"\n</x>', revenue_code="", administration_ids=())
    _, document = parse_bundle(chargeitem.render(make_message((LineAction(Action.CHARGE, line),))))
    item = resources(document)[0]
    assert item["extension"] == [
        {"url": MODIFIER_URL, "valueCoding": {"system": CPT, "code": "59"}},
        {"url": "urn:ivpush:fhir:StructureDefinition:charge-code", "valueString": HOSTILE + '"\n</x>'},
    ]
    assert "service" not in item
