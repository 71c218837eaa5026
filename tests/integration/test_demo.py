"""``ivpush demo``: the bundled feeds coded as facility then professional claims, every administration shown."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli.demo import PROFESSIONAL_HEADING
from connector.cli.main import cli
from connector.console.app import create_app
from connector.console.reader import StateSource
from connector.policy.model import Policy

SITE = Path(__file__).resolve().parents[2] / "examples" / "site"


def demo(*args: str) -> tuple[str, str]:
    """The facility and professional parts of the demo's output."""
    result = CliRunner().invoke(cli, ["demo", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    facility, professional = result.output.split(PROFESSIONAL_HEADING)
    assert facility.startswith("== Facility claims (claim type facility, the default):")
    return facility, professional


def encounters(part: str) -> dict[str, str]:
    """Each encounter's block by visit number."""
    blocks = part.split("\nEncounter ")
    return {block.split()[0]: block for block in blocks[1:]}


def codes(block: str) -> list[tuple[str, str, str]]:
    """(code, units, flags) of each charge line."""
    return [(row.split()[1], row.split()[3], row.split()[6]) for row in block.splitlines() if row.startswith("  2026")]


@pytest.fixture(scope="module")
def shipped() -> tuple[dict[str, str], dict[str, str], str]:
    facility, professional = demo()
    return encounters(facility), encounters(professional), facility + professional


def test_the_facility_claims_are_the_expected_charges(shipped: tuple[dict[str, str], dict[str, str], str]) -> None:
    facility, _, _ = shipped
    ed, obs = facility["ED20260302001"], facility["OBS20260302042"]
    assert ed.startswith("ED20260302001 — emergency, facility claim, payer bcbs, place of service 23\n")
    for code, units in [("96374", 1), ("96375", 1), ("96376", 1), ("96361", 2)]:
        assert any(f"  {code}  " in row and f"  {units}  0450" in row for row in ed.splitlines()), (code, ed)
    assert "96372" not in ed  # the IM ketorolac is explained, never charged
    assert [c for c, _, _ in codes(obs)] == ["96365", "96375", "96366", "96376"]


def test_the_payer_comes_from_the_registration_and_the_primary_coverage_by_priority(
    shipped: tuple[dict[str, str], dict[str, str], str],
) -> None:
    facility, _, _ = shipped
    assert (
        "  primary coverage sent: BCBSND-PPO, GHBC01, BLUE CROSS BLUE SHIELD OF NORTH DAKOTA → bcbs ("
        in (facility["ED20260302001"])
    )
    clinic = facility["INF20260302007"]
    # IN1 set id 1 is Cigna, but IN1-22 makes Medicare (set id 2) the primary coverage
    assert clinic.startswith("INF20260302007 — outpatient, facility claim, payer medicare, place of service 22\n")
    assert "  primary coverage sent: MEDICARE-B, GHMC01, MEDICARE PART B → medicare (mappings/payer_map.yaml:" in clinic
    assert "primary coverage" not in facility["OBS20260302042"]  # no insurance in the FHIR feed: the default policy


def test_every_administration_without_a_line_is_listed_with_its_reason(
    shipped: tuple[dict[str, str], dict[str, str], str],
) -> None:
    facility, _, whole = shipped
    ed = facility["ED20260302001"]
    assert "  no line, or to review (3 of 7 administrations):" in ed
    for source, reason in [("ED004", "within_interval"), ("ED006", "im_sq_injection"), ("ED008", "not_given")]:
        assert re.search(rf"^    2026-03-02 \d\d:\d\d-05:00  \w+ +{source} +no line: {reason} — ", ed, re.M), source
    clinic = facility["INF20260302007"]
    assert "  no line, or to review (1 of 2 administrations):" in clinic
    assert (
        "diphenhydramine   INF002    needs review: unmapped_route — Route not mapped: IV slow push. "
        "Not in the route mappings: 99GH|IVSLOW (RXR-1)."
    ) in clinic
    assert "no line, or to review" not in facility["OBS20260302042"]  # all three coded
    summary = "no line: 1 im_sq_injection, 1 not_given, 1 within_interval; needs review: 1 unmapped_route"
    assert "administrations coded 8; " + summary in whole
    assert whole.count("rejects: 0 (none)") == 2


def test_the_professional_part_writes_off_bcbs_in_the_emergency_department(
    shipped: tuple[dict[str, str], dict[str, str], str],
) -> None:
    _, professional, _ = shipped
    ed = professional["ED20260302001"]
    assert ed.startswith("ED20260302001 — emergency, professional claim, payer bcbs, place of service 23\n")
    assert [(c, flags) for c, _, flags in codes(ed)] == [
        ("96361", "write_off"),
        ("96374", "needs_review,write_off"),  # no primary flag read by the shipped site settings
        ("96375", "write_off"),
    ]
    assert "write_off: the payer does not reimburse these codes on this claim type in place of service 23" in ed
    assert "ED005     no line: facility_only" in ed  # 96376 is a facility code
    clinic = professional["INF20260302007"]
    assert [(c, flags) for c, _, flags in codes(clinic)] == [("96365", "needs_review")]  # Medicare: no write-off
    assert "write_off" not in clinic


def test_the_example_site_maps_the_local_route_the_clinic_and_the_primary_flag() -> None:
    facility, professional = demo("--mappings", str(SITE))
    clinic = encounters(facility)["INF20260302007"]
    assert clinic.startswith("INF20260302007 — outpatient, facility claim, payer medicare, place of service 19\n")
    assert "examples/site/payer_map.yaml:" in clinic
    assert [c for c, _, _ in codes(clinic)] == ["96365", "96375"] and "no line, or to review" not in clinic
    assert "needs review: none" in facility
    ed = encounters(professional)["ED20260302001"]
    assert [(c, flags) for c, _, flags in codes(ed)] == [
        ("96361", "write_off"),
        ("96374", "write_off"),
        ("96375", "write_off"),
    ]
    assert "the feed marks it as the primary reason for the encounter" in ed
    assert "needs review: none" in professional


def test_with_a_state_the_demo_ends_telling_how_to_open_the_console_on_it(tmp_path: Path, policy: Policy) -> None:
    state = tmp_path / "demo" / "state.db"
    result = CliRunner().invoke(cli, ["demo", "--state", str(state)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.rstrip("\n").splitlines()[-1] == (
        f"open the review console on the demo's state: ivpush serve --state {state}  (then http://127.0.0.1:8080/)"
    )
    source = StateSource(str(state))
    try:
        page = create_app(source, policy).test_client().get("/?q=ED20260302001")
    finally:
        source.close()
    assert b'class="encounter-link"' in page.data
    again = CliRunner().invoke(cli, ["demo", "--state", str(state)])
    assert again.exit_code == 2 and "exists: the demo writes a new state" in again.output
