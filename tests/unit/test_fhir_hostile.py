"""Hostile FHIR input (issue #12): details without sender-chosen names (7), repeated JSON keys, time
window and identifiers (8), Bundles read entry by entry (13). The replayed corpus is tests/hostile/
{fhir-details,fhir-values,bundles}; these tests pin the adapter's rules and their edges.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, field_validator

from connector.adapters import errors
from connector.adapters.archive import Record
from connector.adapters.dispatch import parse_record, read_record
from connector.adapters.errors import AdapterError
from connector.adapters.fhir import parse_fhir, read_fhir
from connector.adapters.fhir.details import describe, is_element_name
from connector.adapters.fhir.jsondoc import load
from connector.adapters.result import Parsed
from connector.adapters.sanity import TimeWindow
from connector.cli.main import cli
from connector.policy.loader import load_policy

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "fhir"
POLICY = load_policy()  # module level: hypothesis tests do not take function-scoped fixtures
PUSH = json.loads((SAMPLES / "r4-push-method-v2-0165-ivp.json").read_text())
ENCOUNTER = json.loads((SAMPLES / "encounter-r4-finished-emer.json").read_text())
TRANSACTION = json.loads((SAMPLES / "bundle-transaction-r4.json").read_text())


def raw(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def push(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(PUSH)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def rejected(document: bytes) -> AdapterError:
    with pytest.raises(AdapterError) as caught:
        parse_fhir(document, POLICY)
    return caught.value


def bundle(*resources: object, kind: str = "collection") -> dict[str, Any]:
    entries = [
        {"fullUrl": f"urn:uuid:9a4c0d5e-0000-4000-8000-{i:012d}", "resource": r} if isinstance(r, dict) else r
        for i, r in enumerate(resources)
    ]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


# --- class 7: details carry element names of the specification, never the sender's ----------------

PLACES = ("root", "dosage", "meta", "subject", "contained", "entry", "entry resource", "bundle", "encounter")


def with_unknown(place: str, name: str) -> bytes:
    """A document with an unknown element ``name`` at ``place``."""
    if place == "encounter":
        return raw({**ENCOUNTER, name: {"family": "x"}})
    doc = push()
    if place == "root":
        doc[name] = "value"
    elif place in ("dosage", "meta", "subject"):
        doc[place][name] = 1
    elif place == "contained":
        doc["contained"] = [{"resourceType": "Medication", "id": "m1", name: True}]
    else:
        other = push(id="ma-other")
        if place == "entry resource":
            other[name] = [1]
        document = bundle(push(), other)
        if place == "entry":
            document["entry"][1][name] = "x"
        elif place == "bundle":
            document[name] = "x"
        return raw(document)
    return raw(doc)


@settings(max_examples=60, deadline=None)
@given(
    place=st.sampled_from(PLACES),
    name=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=4, max_size=24).map(
        lambda s: "Zq" + s
    ),
)
def test_an_unknown_element_is_never_named_wherever_it_is(place: str, name: str) -> None:
    try:
        found = read_fhir(with_unknown(place, name), POLICY)
    except AdapterError as error:
        details = [error.detail]
    else:
        details = [part.error.detail for part in found.rejects]
        assert len(found.records) == 1  # the other administration of the Bundle is kept
    (detail,) = details
    assert name not in detail and name.strip() not in detail
    assert detail.endswith("unknown element (extra_forbidden)")


@pytest.mark.parametrize(
    ("place", "detail"),
    [
        ("root", "MedicationAdministration: unknown element (extra_forbidden)"),
        ("dosage", "MedicationAdministration.dosage: unknown element (extra_forbidden)"),
        ("contained", "MedicationAdministration.contained[0]: unknown element (extra_forbidden)"),
        ("entry", "Bundle.entry[1]: unknown element (extra_forbidden)"),
        ("entry resource", "Bundle.entry[1].resource: unknown element (extra_forbidden)"),
        ("bundle", "Bundle: unknown element (extra_forbidden)"),
    ],
)
def test_an_unknown_element_is_reported_at_its_parent(place: str, detail: str) -> None:
    document = with_unknown(place, "ZqQuillonMRN4471")
    try:
        found = read_fhir(document, POLICY)
    except AdapterError as error:
        assert error.detail == detail
    else:
        assert [p.error.detail for p in found.rejects] == [detail]


def test_an_element_name_of_the_specification_is_named_even_where_it_does_not_belong() -> None:
    assert is_element_name("encounter") and not is_element_name("ZqQuillon")
    error = rejected(raw(push(encounter={"reference": "Encounter/V1"})))  # R5's name in R4 JSON
    assert error.detail == "MedicationAdministration.encounter: extra_forbidden"


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("Date value string does not match spec regex.", True),
        ("DateTime must be timezone aware if it has a time component.", True),
        ("Expect any of field value from this list ['effectiveDateTime', 'effectivePeriod'].", True),
        ("value ZqQuillon is not allowed", False),
    ],
)
def test_only_fhir_cores_fixed_sentences_are_kept_from_a_value_error(message: str, kept: bool) -> None:
    class Model(BaseModel):
        value: str

        @field_validator("value")
        @classmethod
        def _refuse(cls, value: str) -> str:
            raise ValueError(message)

    with pytest.raises(ValidationError) as caught:
        Model(value="ZqQuillon")
    detail = describe("X", caught.value)
    assert detail == (f"X.value: {message}" if kept else "X.value: value_error")
    assert "ZqQuillon" not in detail


# --- class 8: repeated keys -------------------------------------------------------------------------


def test_a_repeated_status_is_rejected_whichever_comes_last() -> None:
    text = json.dumps(PUSH)
    for first, last in (("completed", "not-done"), ("not-done", "completed")):
        twice = text.replace('"status": "completed"', f'"status": "{first}", "status": "{last}"', 1).encode()
        error = rejected(twice)
        assert (error.code, error.detail) == ("invalid_fhir", "MedicationAdministration.status: duplicate key")


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (b'{"resourceType": "Encounter", "id": "a", "st\\u0061tus": "x", "status": "y"}', "Encounter.status"),
        (b'{"resourceType": "Encounter", "ZqQuillon": 1, "ZqQuillon": 2}', "Encounter"),
        (b'{"resourceType": "Encounter", "class": {"code": "a", "code": "b"}}', "Encounter.class.code"),
        (b'{"resourceType": "Encounter", "ZqQ": {"code": "a", "code": "b"}}', "Encounter"),
        (b'[{"a": 1, "a": 1}]', "document[0]"),
        (b'{"resourceType": "Encounter", "a:b": 1, "a:b": 2, "text": "\\u003a"}', "Encounter"),
        (b'{"resourceType": "Encounter", "id": "x:y", "id": "x:y"}', "Encounter.id"),
    ],
)
def test_repeated_keys_are_found_with_a_path_of_element_names(text: bytes, detail: str) -> None:
    with pytest.raises(errors.InvalidFhir) as caught:
        load(text)
    assert caught.value.detail == f"{detail}: duplicate key"
    assert "ZqQ" not in caught.value.detail


def test_a_repeat_inside_a_bundle_entry_is_that_entrys_problem() -> None:
    text = json.dumps(bundle(push(), push(id="ma-2"))).replace('"status": "completed"', '"status": "x", "status": "y"')
    text = text.replace('"status": "x", "status": "y"', '"status": "completed"', 1).encode()  # only the second
    assert load(text).repeated == {1: "Bundle.entry[1].resource.status: duplicate key"}
    found = read_fhir(text, POLICY)
    assert len(found.records) == 1 and [p.part for p in found.rejects] == ["entry[1]"]


@st.composite
def json_text(draw: st.DrawFn) -> tuple[bytes, bool]:
    """JSON text that may repeat a key (keys and strings with colons, some escaped), and whether it does."""
    keys = st.sampled_from(["a", "b", "a:b", ":", "status", "c\u00e9", "d"])
    strings = st.text(st.sampled_from('ab:\u00e9 \\"'), max_size=6)
    repeated = False

    def render(depth: int) -> str:
        nonlocal repeated
        kind = draw(st.integers(0, 3 if depth < 3 else 1))
        if kind == 0:
            return escape(draw(strings))
        if kind == 1:
            return str(draw(st.integers(-5, 5)))
        if kind == 2:
            return "[" + ", ".join(render(depth + 1) for _ in range(draw(st.integers(0, 3)))) + "]"
        names = draw(st.lists(keys, max_size=4))
        repeated = repeated or len(set(names)) < len(names)
        return "{" + ", ".join(f"{escape(n)}: {render(depth + 1)}" for n in names) + "}"

    def escape(value: str) -> str:
        text = json.dumps(value, ensure_ascii=draw(st.booleans()))
        return text.replace(":", "\\u003a") if draw(st.booleans()) else text

    return render(0).encode(), repeated


@settings(max_examples=400, deadline=None)
@given(json_text())
def test_the_cheap_check_finds_every_repeat_and_only_repeats(case: tuple[bytes, bool]) -> None:
    text, repeated = case
    try:
        found = load(text)
    except errors.InvalidFhir as error:
        assert repeated and error.detail.endswith("duplicate key")
    else:
        assert not repeated and found.value == orjson.loads(text) and not found.repeated


# --- class 8: times outside the window, identifiers --------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"effectiveDateTime": "9999-03-02T09:00:00-05:00"}, "MedicationAdministration.effectiveDateTime"),
        ({"effectiveDateTime": "0001-01-01"}, "MedicationAdministration.effectiveDateTime"),
        ({"effectiveDateTime": "1899-12-31T23:59:59Z"}, "MedicationAdministration.effectiveDateTime"),
        (
            {
                "effectiveDateTime": None,
                "effectivePeriod": {"start": "2026-03-02T09:00:00Z", "end": "2200-01-01T00:00:00Z"},
            },
            "MedicationAdministration.effectivePeriod.end",
        ),
        (
            {"meta": {"versionId": "1", "lastUpdated": "2300-01-01T00:00:00Z"}},
            "MedicationAdministration.meta.lastUpdated",
        ),
    ],
)
def test_times_outside_the_default_window_are_bad_timestamps(changes: dict[str, Any], detail: str) -> None:
    error = rejected(raw(push(**changes)))
    assert type(error) is errors.BadTimestamp and error.detail.startswith(detail)


def test_the_window_is_the_callers() -> None:
    document = raw(push(effectiveDateTime="1950-03-02T09:00:00-05:00"))
    assert parse_fhir(document, POLICY)[0].administrations  # inside 1900..2200
    narrow = TimeWindow(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    with pytest.raises(errors.BadTimestamp):
        parse_fhir(document, POLICY, window=narrow)
    record = Record("feed.json", "document", "fhir", document)
    with pytest.raises(errors.BadTimestamp):
        read_record(record, POLICY, UTC, 1 << 20, window=narrow)


@pytest.mark.parametrize(
    ("status", "edge", "value"),
    [("finished", "end", "9999-01-01T00:00:00Z"), ("in-progress", "start", "0001-01-02T00:00:00Z")],
)
def test_encounter_edges_outside_the_window_are_bad_timestamps(status: str, edge: str, value: str) -> None:
    encounter = copy.deepcopy(ENCOUNTER)
    encounter["status"] = status
    encounter["period"][edge] = value
    error = rejected(raw(encounter))
    assert type(error) is errors.BadTimestamp and error.detail == f"Encounter.period.{edge} outside the accepted window"


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"id": "ma-1\x00"}, "MedicationAdministration.id holds control characters"),
        ({"id": "\u00a0"}, "MedicationAdministration.id empty or only whitespace"),
        ({"context": {"reference": "Encounter/V1\x00"}}, "MedicationAdministration.context.reference holds control"),
        ({"context": {"reference": "Encounter/V1\u200b"}}, "MedicationAdministration.context.reference holds control"),
        ({"subject": {"reference": "Patient/P\x1b1"}}, "MedicationAdministration.subject.reference holds control"),
        (
            {"context": {"identifier": {"system": "urn:oid:1.2.3", "value": "V1\x7f"}}},
            "MedicationAdministration.context.identifier.value holds control",
        ),
    ],
)
def test_identifiers_with_control_characters_are_bad_identifiers(changes: dict[str, Any], detail: str) -> None:
    error = rejected(raw(push(**changes)))
    assert type(error) is errors.BadIdentifier and error.detail.startswith(detail)


def test_identifiers_are_trimmed_of_unicode_whitespace() -> None:
    document = push(id="\u2003ma-1\u00a0", context={"reference": "\u00a0Encounter/V1001\u3000"})
    (record,) = parse_fhir(raw(document), POLICY)
    (admin,) = record.administrations
    assert admin.encounter_key == "fhir|V1001" and admin.source.message_id == "MedicationAdministration/ma-1"
    encounter = {**ENCOUNTER, "id": " V1001\u00a0"}
    (event,) = parse_fhir(raw(encounter), POLICY)[0].encounter_events
    assert event.encounter.key == "fhir|V1001"


# --- class 13: Bundles entry by entry ----------------------------------------------------------------


def test_a_transaction_keeps_its_good_entries_and_rejects_the_bad_one_with_its_index() -> None:
    document = copy.deepcopy(TRANSACTION)
    good = len(parse_fhir(raw(document), POLICY))
    bad = push(id="ma-no-context", context=None)
    document["entry"].insert(1, {"fullUrl": "urn:uuid:9a4c0d5e-0000-4000-8000-00000000ffff", "resource": bad})
    found = read_fhir(raw(document), POLICY)
    assert len(found.records) == good
    ((part, error),) = [(p.part, p.error) for p in found.rejects]
    assert (part, error.code) == ("entry[1]", "missing_encounter_key")
    assert error.detail == "Bundle.entry[1]: MedicationAdministration.context absent"
    with pytest.raises(errors.MissingEncounterKey):  # the one-fate form
        parse_fhir(raw(document), POLICY)


def test_an_unrelated_malformed_resource_is_rejected_alone_and_kept_out_of_resolution() -> None:
    medication = {"resourceType": "Medication", "id": "m9", "code": {"text": "x"}, "status": ["active"]}
    by_reference = push(id="ma-ref", medicationCodeableConcept=None, medicationReference={"reference": "Medication/m9"})
    found = read_fhir(
        raw(bundle({"resourceType": "Patient", "birthDate": "1/2/3"}, medication, by_reference, push())), POLICY
    )
    assert [(p.part, p.error.code) for p in found.rejects] == [
        ("entry[0]", "invalid_fhir"),
        ("entry[1]", "invalid_fhir"),
        ("entry[2]", "invalid_fhir"),
    ]
    assert found.rejects[2].error.detail.endswith("medicationReference.reference names a rejected Bundle entry")
    assert [r.administrations[0].source.message_id for r in found.records] == [
        "MedicationAdministration/ma-r4-push-ivp"
    ]


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (bundle(push(), kind="document"), errors.UnsupportedMessageType),
        (bundle(), errors.UnsupportedMessageType),
        (bundle({"resourceType": "Patient"}), errors.UnsupportedMessageType),
        (bundle(push(), kind="message"), errors.InvalidFhir),
        ({**bundle(push()), "type": 5}, errors.InvalidFhir),
        ({**bundle(push()), "entry": {"resource": {}}}, errors.InvalidFhir),
    ],
)
def test_what_concerns_the_bundle_itself_still_rejects_it_whole(
    document: dict[str, Any], error: type[AdapterError]
) -> None:
    with pytest.raises(error):
        read_fhir(raw(document), POLICY)


def test_every_rejected_entry_names_its_own_first_problem() -> None:
    document = bundle(push(effectiveDateTime=None), push(status="given"), push(id="ma-ok"), "text")
    found = read_fhir(raw(document), POLICY)
    assert [(p.part, p.error.code) for p in found.rejects] == [
        ("entry[0]", "missing_field"),
        ("entry[1]", "unknown_status"),
        ("entry[3]", "invalid_fhir"),
    ]
    assert all(p.error.detail.startswith(f"Bundle.{p.part}") for p in found.rejects)
    assert len(found.records) == 1


def test_dispatch_returns_parts_and_its_one_fate_form_raises_the_first() -> None:
    record = Record("b.json", "document", "fhir", raw(bundle(push(context=None), push(id="ma-2"))))
    found = read_record(record, POLICY, UTC, 1 << 20)
    assert isinstance(found, Parsed) and len(found.records) == 1 and found.rejects[0].part == "entry[0]"
    with pytest.raises(errors.MissingEncounterKey):
        parse_record(record, POLICY, UTC, 1 << 20)


def test_replay_writes_one_reject_line_per_rejected_entry(tmp_path: Path) -> None:
    feed = tmp_path / "feed.ndjson"
    first = bundle(push(context=None), push(id="ma-2"), push(id="ma-3", status="given"))
    feed.write_text(json.dumps(first) + "\n" + json.dumps(bundle(push(id="ma-4", context=None))) + "\n")
    rejects = tmp_path / "rejects.ndjson"
    result = CliRunner().invoke(cli, ["replay", str(feed), "--out", str(tmp_path / "out"), "--rejects", str(rejects)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(line["position"], line["code"]) for line in lines] == [
        ("line 1#entry[0]", "missing_encounter_key"),
        ("line 1#entry[2]", "unknown_status"),
        ("line 2#entry[0]", "missing_encounter_key"),
    ]
    assert "rejects: 3 (missing_encounter_key x2, unknown_status x1)" in result.output
