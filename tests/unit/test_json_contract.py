"""Every JSON charge message validates against the shipped schema (ivpush.charge/1)."""

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest

import connector.emitters
from connector.emitters.json_charge import render
from connector.model import ChargeLine, ClaimType, PatientClass
from connector.model.events import EncounterRef
from connector.model.messages import Action, ChargeMessage, LineAction

SCHEMA = json.loads((Path(connector.emitters.__file__).parent / "charge.schema.json").read_text())


def message(*actions: LineAction) -> ChargeMessage:
    return ChargeMessage(
        "msg-" + "a" * 24,
        EncounterRef("GENHOSP|V1", "V1", "GENHOSP", "MRN1", "GENHOSP"),
        PatientClass.EMERGENCY,
        ClaimType.FACILITY,
        "medicare",
        "medicare-2026.1/facility",
        actions,
        datetime(2026, 3, 2, 12, 0, tzinfo=timezone(timedelta(hours=-5))),
    )


LINE = ChargeLine(
    "ln-" + "b" * 24,
    "96376",
    2,
    date(2026, 3, 2),
    ("XS",),
    "0450",
    "IVP96376",
    ("adm-1", "adm-2"),
    "push.same_drug",
    "Repeat IV push of ondansetron …",
    ("no_mue_on_file",),
)


def test_a_charge_and_a_credit_validate_against_the_schema() -> None:
    body = json.loads(render(message(LineAction(Action.CREDIT, LINE), LineAction(Action.CHARGE, LINE))))
    jsonschema.validate(body, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert body["lines"][0]["action"] == "credit" and body["lines"][1]["units"] == 2


def test_the_schema_rejects_a_line_without_its_rule() -> None:
    body = json.loads(render(message(LineAction(Action.CHARGE, LINE))))
    del body["lines"][0]["rule"]
    with pytest.raises(jsonschema.ValidationError, match="'rule' is a required property"):
        jsonschema.validate(body, SCHEMA)


def test_the_output_is_one_line_of_compact_deterministic_json() -> None:
    rendered = render(message(LineAction(Action.CHARGE, LINE)))
    assert rendered.endswith(b"\n") and rendered.count(b"\n") == 1
    assert rendered == render(message(LineAction(Action.CHARGE, LINE)))
