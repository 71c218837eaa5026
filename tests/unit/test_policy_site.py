"""Site settings (``site.yaml``): shipped defaults, key-by-key overrides, ``file:line`` errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from policy_support import assert_problem_at, write

from connector.model import PatientClass
from connector.policy.loader import load_policy
from connector.policy.model import Policy
from connector.policy.site import DEFAULT_CHAIN, PrimaryField, SiteProfile, chain_problem, parse_primary_hl7


def test_the_shipped_site_file_keeps_the_defaults(policy: Policy) -> None:
    assert policy.site == SiteProfile()
    assert policy.site.identity_chain == ("PV1-19", "PID-18", "PV1-50", "order", "visit") == DEFAULT_CHAIN
    assert policy.site.fallback == "reject" and policy.site.origin == ""
    assert policy.site.primary_field is None and policy.site.primary_fhir_extension == ""
    assert policy.site.zone_for("RORMC") is None
    assert not policy.site.rejects_unkeyed


def test_a_policy_built_without_site_files_has_the_default_profile(policy: Policy) -> None:
    bare = Policy({}, {}, {}, {}, {}, policy.drugs, {}, policy.chargemaster)
    assert bare.site == SiteProfile()
    assert bare.payer_map.payer_for(["MEDICARE"], date(2026, 1, 1)) is None
    assert bare.places.place_of_service(PatientClass.EMERGENCY, "", date(2026, 1, 1)) is None


def test_a_site_file_overrides_key_by_key(tmp_path: Path) -> None:
    write(
        tmp_path,
        "site",
        "zones:\n  rormc: America/Chicago\n  UHNG: America/Toronto\nfallback: patient_day\nprimary_hl7: RXA-9.1=P\n",
    )
    site = load_policy(tmp_path).site
    assert site.zone_for("RORMC") == ZoneInfo("America/Chicago")
    assert site.zone_for(" rormc ") == ZoneInfo("America/Chicago")
    assert site.zone_for("uhng") == ZoneInfo("America/Toronto")
    assert site.zone_for("OTHER") is None and site.zone_for("") is None
    assert site.identity_chain == DEFAULT_CHAIN  # not set by the site: the default stays
    assert site.fallback == "patient_day"
    assert site.primary_field == PrimaryField("RXA", 9, 1, "P")
    assert site.origin == f"{tmp_path}/site.yaml:1"


def test_a_site_may_drop_and_reorder_the_field_steps(tmp_path: Path) -> None:
    write(tmp_path, "site", "identity_chain: [PID-18, PV1-19]\n")
    site = load_policy(tmp_path).site
    assert site.identity_chain == ("PID-18", "PV1-19")
    assert site.field_steps == ("PID-18", "PV1-19") and site.service_steps == ()
    assert site.rejects_unkeyed


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("zones:\n  MAIN: America/Chicgo\n", 3, "'America/Chicgo' is not a known IANA time zone"),
        ("zones:\n  MAIN: 5\n", 3, "must be an IANA zone name"),
        ("zones: [America/Chicago]\n", 2, "zones must be a mapping"),
        ("identity_chain: [order, PV1-19]\n", 2, "the service steps (order, visit) come after"),
        ("identity_chain: [PV1-19, visit, order]\n", 2, "'order' comes before 'visit'"),
        ("identity_chain: [PV1-19, PV1-19]\n", 2, "names a step twice"),
        ("identity_chain: [PV1-3]\n", 2, "step 'PV1-3' is not one of"),
        ("identity_chain: []\n", 2, "at least one step"),
        ("fallback: guess\n", 2, "fallback 'guess' is not one of ['reject', 'patient_day']"),
        ("primary_hl7: RXA9\n", 2, "is not of the form SEG-F[.C][=VALUE]"),
        ("primary_fhir_extension: primary\n", 2, "must be an extension URL"),
        ("zone: America/Chicago\n", 2, "unknown key 'zone'"),
    ],
)
def test_site_problems_name_the_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    write(tmp_path, "site", body)
    assert_problem_at(tmp_path, "site", line, message)


def test_the_chain_rules() -> None:
    assert chain_problem(DEFAULT_CHAIN) is None
    assert chain_problem(("PV1-50", "PID-18", "visit")) is None
    assert chain_problem(("order",)) is None
    assert chain_problem(("visit", "PV1-19")) is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("ZRX-2", PrimaryField("ZRX", 2)),
        ("RXA-9.1=P", PrimaryField("RXA", 9, 1, "P")),
        ("RXR-4=primary", PrimaryField("RXR", 4, None, "primary")),
    ],
)
def test_primary_hl7_syntax(text: str, expected: PrimaryField | None) -> None:
    assert parse_primary_hl7(text) == expected


@pytest.mark.parametrize("text", ["RXA", "RXA-0", "RXA-9.", "rxa-9", "RXA-9.1=", "RXA9.1"])
def test_primary_hl7_rejects_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match="SEG-F"):
        parse_primary_hl7(text)


def test_what_a_primary_field_counts_as_primary() -> None:
    assert PrimaryField("RXA", 9, 1, "P").marks(" p ")
    assert not PrimaryField("RXA", 9, 1, "P").marks("S")
    assert PrimaryField("ZRX", 2).marks("Y") and PrimaryField("ZRX", 2).marks("1")
    assert not any(PrimaryField("ZRX", 2).marks(v) for v in ("", "N", "0", "false", "No"))
