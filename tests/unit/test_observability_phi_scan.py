"""The PHI log scan cannot pass silently: it finds planted values, in every form a log may hold them."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import structlog
from broker import hl7_feed
from phi_scan import PhiValue, hl7_values, meaningful, sample_files, sample_phi, scan

from connector.observability.logging import configure_logging

SAMPLE_FILES = sample_files()


@pytest.fixture(scope="module")
def values() -> dict[str, PhiValue]:
    return sample_phi(SAMPLE_FILES, [(body, "hl7_feed") for body in hl7_feed(3)])


def test_the_samples_yield_names_identifiers_birth_dates_and_free_text_from_hl7_and_fhir(
    values: dict[str, PhiValue],
) -> None:
    kinds = {v.kind for v in values.values()}
    for expected in ("MRN (PID-3)", "name (PID-5)", "birth date (PID-7)", "free text (NTE-3)", "free text (note)"):
        assert expected in kinds
    assert any(v.source.endswith(".json") and "name" in v.kind for v in values.values())  # FHIR names
    for text in (
        "mrn900001",
        "smith",
        "19310313",
        "1931-03-13",
        "given slowly",
        "患者",
        "testpatient, alex",
        "mrn00002",
    ):
        assert text in values, text
    assert not {"test", "patient", "demo", "f", "mr", "0001"} & values.keys()  # generic or short: filtered


def test_the_filter_keeps_specific_values_and_drops_short_numeric_and_generic_ones() -> None:
    assert meaningful("MRN0001") and meaningful("太郎") and meaningful("Smith") and meaningful("123456")
    assert not meaningful("Jo") and not meaningful("1234") and not meaningful("PATIENT") and not meaningful(" TEST ")


def test_planted_values_are_found_raw_lowercase_and_json_escaped(values: dict[str, PhiValue]) -> None:
    clean = '{"event": "batch of 8 acked (0 parked)", "message_id": "msg-a19700101b"}\n'  # inside an id: no token
    assert scan({"clean.log": clean}, values) == []
    planted = {
        "raw.log": clean + '{"event": "parked input MRN900001^^^GENHOSP: not_hl7"}\n',
        "lower.log": "warning: patient smith, joseph\n",
        "escaped.log": json.dumps({"event": "name 患者"}) + "\n",  # ensure_ascii: \\u60a3\\u8005
        "date.log": "born 1931-03-13\n",
    }
    hits = scan(planted, values)
    found = {(h.log, h.value.text) for h in hits}
    assert ("raw.log", "MRN900001") in found and ("lower.log", "Smith") in found and ("lower.log", "Joseph") in found
    assert ("escaped.log", "患者") in found and ("date.log", "1931-03-13") in found
    assert next(h for h in hits if h.log == "raw.log").line == 2
    assert "raw.log:2: MRN (PID-3) 'MRN900001' (from " in str(next(h for h in hits if h.log == "raw.log"))


def test_a_value_logged_through_the_real_log_configuration_is_caught(values: dict[str, PhiValue]) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    try:
        configure_logging("DEBUG", "json", stream=out)
        logging.getLogger("ivpush.bus").warning("bad input", extra={"detail": "PID-5 was 患者^太郎"})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
    assert {h.value.text for h in scan({"consumer.log": out.getvalue()}, values)} >= {"患者", "太郎"}


def test_an_empty_value_set_is_an_error_not_a_pass() -> None:
    with pytest.raises(ValueError, match="no PHI values"):
        scan({"x.log": "anything"}, {})


def test_hl7_values_read_repetitions_components_escapes_and_clashing_delimiters(tmp_path: Path) -> None:
    text = (
        "MSH|^~\\&|A|B|C|D|20260302||RAS^O17|1|P|2.5.1\r"
        "PID|1||ID1234^^^H^MR~ID5678^^^H^PI||O\\T\\BRIEN^MARY^ANN||19991231|F|||1 MAIN ST^^TOWN^ST^12345||555-0100\r"
        "NTE|1||patient felt dizzy\r"
    )
    got = {v.text for v in hl7_values(text, "x")}
    assert {"ID1234", "ID5678", "O&BRIEN", "MARY", "ANN", "19991231", "1999-12-31", "1 MAIN ST", "12345"} <= got
    assert {"555-0100", "patient felt dizzy"} <= got
    clashing = "MSH|^^\\&|A|B\rPID|1||MRN7777^^^H^MR||DOE^JANE\r"
    assert {"MRN7777", "DOE", "JANE"} <= {v.text for v in hl7_values(clashing, "x")}
