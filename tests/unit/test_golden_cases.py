"""Runs every golden case in tests/cases/*.yaml through the rules and compares exactly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connector.adapters.scenario import Scenario, load_scenarios
from connector.model import ChargeResult
from connector.policy.model import Policy
from connector.policy.payers import expand_codes
from connector.rules import evaluate

CASES_DIR = Path(__file__).resolve().parent.parent / "cases"
SCENARIOS = [s for path in sorted(CASES_DIR.glob("*.yaml")) for s in load_scenarios(path)]
SET_KEYS = {"facility_only_codes", "professional_suppressed_codes", "professional_suppressed_pos"}


def with_overrides(policy: Policy, payer_name: str, overrides: dict[str, Any]) -> Policy:
    if not overrides:
        return policy
    values = {k: (expand_codes(v) if k in SET_KEYS else v) for k, v in overrides.items()}
    payer = replace(policy.payer(payer_name), **values)
    return replace(policy, payers={**policy.payers, payer.name: payer})


def run(scenario: Scenario, policy: Policy) -> ChargeResult:
    return evaluate(
        scenario.encounter, with_overrides(policy, scenario.encounter.payer, dict(scenario.policy_overrides))
    )


def _matches(line: Any, expected: dict[str, Any]) -> bool:
    """Code and date always; modifiers only when the case gives them (docs/golden-cases.md, DOUBTS.md)."""
    if line.code != str(expected["code"]) or str(line.service_date) != str(expected["date"]):
        return False
    return "modifiers" not in expected or sorted(line.modifiers) == sorted(map(str, expected["modifiers"] or ()))


def _fits(line: Any, expected: dict[str, Any]) -> bool:
    admins = expected.get("admins")
    return line.units == expected["units"] and (admins is None or sorted(line.administration_ids) == sorted(admins))


def pair_lines(lines: Any, expected_lines: list[dict[str, Any]]) -> tuple[list[tuple[Any, dict[str, Any]]], list[Any]]:
    """Each expected line paired with one produced line; the produced lines left over.

    Expectations that give modifiers are paired first (they are the most specific); among
    several candidates the one whose units and administrations fit is taken.
    """
    remaining = list(lines)
    pairs: list[tuple[Any, dict[str, Any]]] = []
    for expected in sorted(expected_lines, key=lambda e: "modifiers" not in e):
        candidates = [ln for ln in remaining if _matches(ln, expected)]
        if not candidates:
            pairs.append((None, expected))
            continue
        chosen = next((ln for ln in candidates if _fits(ln, expected)), candidates[0])
        remaining.remove(chosen)
        pairs.append((chosen, expected))
    return pairs, remaining


def test_there_are_at_least_sixty_golden_cases() -> None:
    assert len(SCENARIOS) >= 60


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_golden_case(scenario: Scenario, policy: Policy) -> None:
    result = run(scenario, policy)
    expected_lines = [
        {**e, "admins": list(map(str, e["admins"]))} if "admins" in e else e
        for e in (scenario.expect.get("lines") or [])
    ]
    summary = "\n".join(
        f"  {ln.code} x{ln.units} {ln.service_date} {ln.modifiers} {ln.administration_ids} {ln.flags}"
        for ln in result.lines
    )
    decisions = "\n".join(f"  {d.administration_id}: {d.reason_code} — {d.reason}" for d in result.decisions)
    context = f"\ngot lines:\n{summary}\ndecisions:\n{decisions}"
    pairs, extra = pair_lines(result.lines, expected_lines)
    missing = [e for line, e in pairs if line is None]
    assert not missing and not extra, f"missing {missing}, unexpected {extra}{context}"
    for line, expected in pairs:
        key = (expected["code"], expected["date"])
        assert line.units == expected["units"], f"{key}: units {line.units} != {expected['units']}{context}"
        if "admins" in expected:
            assert sorted(line.administration_ids) == sorted(expected["admins"]), f"{key}{context}"
    by_admin = {d.administration_id: d.reason_code.value for d in result.decisions}
    for admin_id, reason in (scenario.expect.get("decisions") or {}).items():
        assert by_admin.get(str(admin_id)) == reason, f"{admin_id}{context}"
    for code, flags in (scenario.expect.get("flags") or {}).items():
        carrying = [ln for ln in result.lines if ln.code == str(code)]
        assert carrying, f"no {code} line{context}"
        for flag in flags:
            assert all(flag in ln.flags for ln in carrying), f"{code} lacks {flag}{context}"
