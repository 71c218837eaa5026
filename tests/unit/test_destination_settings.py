"""Per-destination settings: the DFT envelope and FT1 conventions, the ChargeItem subject, the forwarder's section."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from ci import import_or_skip
from fhir.resources.R4B.bundle import Bundle

from connector.bootstrap import renderers
from connector.config import SettingsError, load
from connector.config.checks import file_problems
from connector.config.destinations import ChargeItemSection, DftSection, ForwardSection, patient_type_map
from connector.emitters import chargeitem, dft
from connector.emitters.chargeitem import ChargeItemSettings
from connector.emitters.dft import DftSettings
from connector.model.charge import ChargeLine
from connector.model.encounter import ClaimType, PatientClass
from connector.model.events import EncounterRef
from connector.model.messages import Action, ChargeMessage, LineAction

hl7apy_parser = import_or_skip("hl7apy.parser")
hl7apy_consts = import_or_skip("hl7apy.consts")

REF = EncounterRef("HOSP|V123", "V123", "HOSP", "MRN42", "MAIN")
AS_OF = datetime(2024, 3, 5, 14, 30, 5, tzinfo=UTC)

# The default DFT as the tests pin it: every byte is what earlier versions sent, except PID-5,
# which is now empty instead of the HL7 null "" (an instruction to delete the name).
DEFAULT_DFT = (
    b"MSH|^~\\&|IVPUSH|MAIN|||20240305143005+0000||DFT^P03^DFT_P03|msg-1|P|2.5.1||||||UNICODE UTF-8\r"
    b"EVN|P03|20240305143005+0000\r"
    b"PID|1||MRN42^^^HOSP\r"
    b"PV1|1|E|||||||||||||||||V123^^^HOSP\r"
    b"FT1|1|ln-credit||20240304|20240305143005+0000|CD|CDM374^96374|||1||||||||E|||||||96374^^C4\r"
    b"FT1|2|ln-charge||20240305|20240305143005+0000|CG|CDM376^96376|||2||||||||E|||||||96376^^C4|XS^^C4\r"
)


def line(
    line_id: str, code: str, units: int, day: int, charge_code: str, modifiers: tuple[str, ...] = ()
) -> ChargeLine:
    return ChargeLine(
        line_id=line_id,
        code=code,
        units=units,
        service_date=date(2024, 3, day),
        modifiers=modifiers,
        revenue_code="0260",
        charge_code=charge_code,
        administration_ids=("adm-1",),
        rule="push.same_drug",
        reason="Repeat push.",
    )


def message(patient_class: PatientClass = PatientClass.EMERGENCY, ref: EncounterRef = REF) -> ChargeMessage:
    return ChargeMessage(
        message_id="msg-1",
        encounter=ref,
        patient_class=patient_class,
        claim_type=ClaimType.FACILITY,
        policy="default",
        policy_version="default@1",
        lines=(
            LineAction(Action.CREDIT, line("ln-credit", "96374", 1, 4, "CDM374")),
            LineAction(Action.CHARGE, line("ln-charge", "96376", 2, 5, "CDM376", ("XS",))),
        ),
        as_of=AS_OF,
    )


def validated(data: bytes) -> list[list[str]]:
    """The segments' fields, after hl7apy STRICT validated the message (PID-5 filled for it only)."""
    text = data.decode()
    segments = [s.split("|") for s in text.split("\r") if s]
    filled = [[*s, *[""] * (6 - len(s))] if s[0] == "PID" else s for s in segments]
    for fields in filled:
        if fields[0] == "PID":
            fields[5] = fields[5] or '""'
    strict = hl7apy_consts.VALIDATION_LEVEL.STRICT
    parsed = hl7apy_parser.parse_message("\r".join("|".join(f) for f in filled), validation_level=strict)
    assert parsed.validate() is True
    return segments


def ft1s(segments: list[list[str]]) -> list[list[str]]:
    return [s for s in segments if s[0] == "FT1"]


# --- DFT ------------------------------------------------------------------------------------------


def test_default_dft_is_the_pinned_bytes_with_an_empty_pid_5() -> None:
    assert dft.render(message()) == DEFAULT_DFT
    assert renderers(["dft"])["dft"](message()) == DEFAULT_DFT
    assert DftSection().emitter_settings() == DftSettings()
    validated(DEFAULT_DFT)


def test_patient_name_null_sends_the_older_pid_5() -> None:
    data = dft.render(message(), DftSettings(patient_name="null"))
    assert data == DEFAULT_DFT.replace(b"PID|1||MRN42^^^HOSP\r", b'PID|1||MRN42^^^HOSP||""\r')
    validated(data)


def test_every_dft_setting_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "ivpush.toml"
    config.write_text(
        "[dft]\n"
        'sending_application = "IVPUSH-TEST"\nsending_facility = "SITE7"\n'
        'receiving_application = "EPIC"\nreceiving_facility = "GENHOSP"\nprocessing_id = "T"\n'
        'charge_type = "CH"\ncredit_type = "CR"\nquantity_format = "decimal"\n'
        'department = "4010"\npatient_types = "emergency=ER, inpatient=IP, observation="\n',
        encoding="utf-8",
    )
    settings = load(config, environ={})
    outputs = renderers(["dft"], settings.dft.emitter_settings())
    segments = validated(outputs["dft"](message()))
    msh = segments[0]
    assert msh[2:6] == ["IVPUSH-TEST", "SITE7", "EPIC", "GENHOSP"]
    assert msh[10] == "T"
    credit, charge = ft1s(segments)
    assert (credit[6], credit[10], credit[13], credit[18]) == ("CR", "1.00", "4010", "ER")
    assert (charge[6], charge[10], charge[13], charge[18]) == ("CH", "2.00", "4010", "ER")
    assert segments[3][2] == "E"  # PV1-2 keeps the HL7 table 0004 code


@pytest.mark.parametrize(
    ("patient_class", "ft1_18"),
    [(PatientClass.INPATIENT, "IP"), (PatientClass.OBSERVATION, ""), (PatientClass.OUTPATIENT, "O")],
)
def test_patient_types_map_unlisted_classes_keep_the_pv1_2_code(patient_class: PatientClass, ft1_18: str) -> None:
    settings = DftSection(patient_types="inpatient=IP,observation=").emitter_settings()
    segments = validated(dft.render(message(patient_class), settings))
    assert {(s[18] if len(s) > 18 else "") for s in ft1s(segments)} == {ft1_18}


def test_negative_quantity_uses_the_charge_type_with_decimals() -> None:
    settings = DftSettings(reversal="negative_quantity", charge_type="CH", quantity_format="decimal")
    credit, charge = ft1s(validated(dft.render(message(), settings)))
    assert (credit[6], credit[10]) == ("CH", "-1.00")
    assert (charge[6], charge[10]) == ("CH", "2.00")


def test_a_department_with_delimiters_stays_in_its_field() -> None:
    credit, _ = ft1s(validated(dft.render(message(), DftSettings(department="ED|4^10"))))
    assert credit[13] == "ED\\F\\4\\S\\10"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"IVPUSH_DFT__PROCESSING_ID": "X"}, "dft.processing_id"),
        ({"IVPUSH_DFT__CHARGE_TYPE": "C|G"}, "dft.charge_type"),
        ({"IVPUSH_DFT__CREDIT_TYPE": "C D"}, "dft.credit_type"),
        ({"IVPUSH_DFT__QUANTITY_FORMAT": "float"}, "dft.quantity_format"),
        ({"IVPUSH_DFT__PATIENT_NAME": "blank"}, "dft.patient_name"),
        ({"IVPUSH_DFT__PATIENT_TYPES": "er=ER"}, "the classes are emergency, outpatient"),
        ({"IVPUSH_DFT__PATIENT_TYPES": "inpatient"}, "give class=code pairs"),
        ({"IVPUSH_DFT__PATIENT_TYPES": "inpatient=IP,inpatient=I"}, "given twice"),
        ({"IVPUSH_DFT__PATIENT_TYPES": "inpatient=I P"}, "must be 1-16 letters"),
        ({"IVPUSH_CHARGEITEM__SUBJECT": "literal"}, "chargeitem.subject"),
        ({"IVPUSH_CHARGEITEM__PATIENT_SYSTEM": "not a uri"}, "chargeitem.patient_system"),
        ({"IVPUSH_FORWARD__PORT": "0"}, "forward.port"),
        ({"IVPUSH_FORWARD__KEY_FILE": "/k.pem"}, "needs forward.cert_file"),
        ({"IVPUSH_FORWARD__MAX_ATTEMPTS": "-1"}, "forward.max_attempts"),
        ({"IVPUSH_FORWARD__ACK_TIMEOUT": "0"}, "forward.ack_timeout"),
    ],
)
def test_invalid_destination_settings_are_named(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load(environ=environ)
    assert expected in "\n".join(str(problem) for problem in caught.value.problems)


def test_patient_type_map() -> None:
    assert patient_type_map("") == {}
    assert patient_type_map(" emergency = ER ,inpatient=") == {PatientClass.EMERGENCY: "ER", PatientClass.INPATIENT: ""}


def test_dft_settings_check_their_choices() -> None:
    with pytest.raises(ValueError, match="quantity_format"):
        DftSettings(quantity_format="float")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="patient_name"):
        DftSettings(patient_name="none")  # type: ignore[arg-type]


# --- ChargeItem -----------------------------------------------------------------------------------


def subjects(data: bytes) -> list[dict[str, object]]:
    bundle = Bundle.model_validate_json(data)  # fhir.resources R4B validation
    assert bundle.entry
    return [entry["resource"]["subject"] for entry in json.loads(data)["entry"]]


def test_chargeitem_subject_is_an_identifier_by_default() -> None:
    expected = {
        "type": "Patient",
        "identifier": {"system": "urn:ivpush:patient-id", "value": "MRN42", "assigner": {"display": "HOSP"}},
    }
    assert subjects(chargeitem.render(message())) == [expected, expected]
    assert subjects(renderers(["chargeitem"])["chargeitem"](message())) == [expected, expected]
    assert "Patient/" not in chargeitem.render(message()).decode()


def test_chargeitem_settings_from_the_environment() -> None:
    settings = load(environ={"IVPUSH_CHARGEITEM__PATIENT_SYSTEM": "urn:oid:2.16.840.1.113883.3.999.1"})
    data = renderers(["chargeitem"], chargeitem_settings=settings.chargeitem.emitter_settings())["chargeitem"](
        message()
    )
    assert subjects(data)[0]["identifier"] == {
        "system": "urn:oid:2.16.840.1.113883.3.999.1",
        "value": "MRN42",
        "assigner": {"display": "HOSP"},
    }


def test_chargeitem_reference_mode_is_the_older_literal_reference() -> None:
    settings = ChargeItemSection(subject="reference").emitter_settings()
    assert subjects(chargeitem.render(message(), settings))[0] == {"reference": "Patient/MRN42"}


def test_chargeitem_subject_without_authority_or_patient() -> None:
    no_authority = EncounterRef("V9", "V9", "", "MRN 9")
    assert subjects(chargeitem.render(message(ref=no_authority)))[0] == {
        "type": "Patient",
        "identifier": {"system": "urn:ivpush:patient-id", "value": "MRN 9"},
    }
    unknown = subjects(chargeitem.render(message(ref=EncounterRef("V9", "V9"))))[0]
    assert unknown == {
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]
    }


def test_chargeitem_settings_check_their_values() -> None:
    with pytest.raises(ValueError, match="subject"):
        ChargeItemSettings(subject="literal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="patient_system"):
        ChargeItemSettings(patient_system=" ")


# --- the forwarder's section ----------------------------------------------------------------------


def test_forward_section_defaults_and_queue_names() -> None:
    built = ForwardSection().forward_settings("site.out.dft", reconnect_max=5.0)
    assert (built.queue, built.parking_queue) == ("site.out.dft", "site.out.dft.parking")
    assert (built.host, built.port, built.tls, built.max_attempts) == ("127.0.0.1", 2575, False, 0)
    assert (built.ack_timeout, built.retry_base, built.retry_max, built.reconnect_max) == (30.0, 1.0, 60.0, 5.0)
    named = load(environ={"IVPUSH_FORWARD__QUEUE": "billing.dft", "IVPUSH_FORWARD__PORT": "6661"})
    built = named.forward.forward_settings("ignored")
    assert (built.queue, built.parking_queue, built.port) == ("billing.dft", "billing.dft.parking", 6661)


def test_the_documented_toml_example_loads_with_these_tables(tmp_path: Path) -> None:
    document = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = document.split("```toml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "ivpush.toml"
    config.write_text(example, encoding="utf-8")
    settings = load(config, environ={})
    assert (settings.dft.receiving_application, settings.dft.department) == ("EPIC", "4010")
    assert settings.dft.emitter_settings().patient_types[PatientClass.OBSERVATION] == "OBS"
    assert settings.chargeitem.patient_system == "urn:oid:2.16.840.1.113883.3.999.1"
    assert (settings.forward.host, settings.forward.port, settings.forward.tls) == ("engine.example.org", 6661, True)


def test_check_names_missing_forward_tls_files(tmp_path: Path) -> None:
    settings = load(environ={"IVPUSH_FORWARD__TLS": "true", "IVPUSH_FORWARD__CA_FILE": str(tmp_path / "none.pem")})
    problems = [str(problem) for problem in file_problems(settings)]
    assert problems == [f"env IVPUSH_FORWARD__CA_FILE: forward.ca_file: {tmp_path / 'none.pem'}: no such readable file"]
