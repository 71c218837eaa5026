"""``ivpush explain FILE``: why each encounter got the lines it got (and why a push got none)."""

from __future__ import annotations

from pathlib import Path

import click

from connector.adapters.scenario import ScenarioError, load_scenarios
from connector.cli.options import load_or_exit, mappings_option
from connector.model import ChargeResult, Encounter
from connector.rules import evaluate


def render(encounter: Encounter, result: ChargeResult, title: str = "") -> str:
    """Human-readable explanation of one coded encounter."""
    decisions = {d.administration_id: d for d in result.decisions}
    out = [
        f"Encounter {encounter.key}" + (f" — {title}" if title else ""),
        f"  {encounter.patient_class.value}, {result.claim_type.value} claim, payer {result.policy} "
        f"(policy {result.policy_version})",
        "  Administrations in time order:",
    ]
    for admin in encounter.administrations:
        decision = decisions.get(admin.id)
        drug = admin.drug.text or ",".join(c.code for c in admin.drug.codings)
        if decision is None:
            out.append(f"    {admin.start:%Y-%m-%d %H:%M}  {admin.id:<10} {drug}")
            continue
        outcome = "→ " + ", ".join(decision.codes) if decision.codes else f"no line ({decision.reason_code.value})"
        out.append(
            f"    {admin.start:%Y-%m-%d %H:%M}  {admin.id:<10} {drug}  [{decision.kind.value}, {decision.drug_key}]"
        )
        out.append(f"        {outcome}: {decision.reason}")
    out.append("  Lines:" if result.lines else "  Lines: none")
    for line in result.lines:
        modifiers = "-".join(line.modifiers)
        flags = f"  flags: {', '.join(line.flags)}" if line.flags else ""
        out.append(
            f"    {line.service_date}  {line.code}{'-' + modifiers if modifiers else ''} x{line.units}  "
            f"rev {line.revenue_code}  {line.charge_code}  rule {line.rule}  "
            f"[{', '.join(line.administration_ids)}]{flags}"
        )
        out.append(f"        {line.reason}")
    return "\n".join(out)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@mappings_option
def explain(files: tuple[Path, ...], mappings: Path | None) -> None:
    """Explain the coding of the encounters in scenario FILES (YAML, see docs/golden-cases.md)."""
    policy = load_or_exit(mappings)
    for path in files:
        try:
            scenarios = load_scenarios(path)
        except ScenarioError as error:
            raise click.UsageError(str(error)) from error
        for scenario in scenarios:
            click.echo(render(scenario.encounter, evaluate(scenario.encounter, policy), scenario.name))
            click.echo()
