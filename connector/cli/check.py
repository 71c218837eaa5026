"""``ivpush check``: validate the merged mappings (shipped defaults + a site overlay) and the settings.

Settings come from ``--config`` (or ``IVPUSH_CONFIG``), the environment and secret files, exactly
as ``ivpush consume`` reads them. Every problem is printed as ``source: key: message``; any
problem exits 2. ``--show`` prints the effective settings, each with its source, secrets redacted.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import click

from connector.bootstrap import IDENTITY_KEY_ENV, identity_key, policy_from_settings
from connector.cli.options import mappings_option

if TYPE_CHECKING:  # the settings model (pydantic) and the policy: imported when the check runs (#15)
    from connector.config import Settings
    from connector.policy.model import Policy


@click.command()
@mappings_option
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file to check (default: env IVPUSH_CONFIG).",
)
@click.option("--show", is_flag=True, help="Print the effective settings with each one's source (secrets redacted).")
def check(mappings: Path | None, config_path: Path | None, show: bool) -> None:
    """Validate mappings and settings; exit 0 when valid, 2 with every problem listed otherwise."""
    from connector.config import Problem, collect
    from connector.config.checks import file_problems
    from connector.config.topology import topology_problem

    settings, found = collect(config_path, {"coding.mappings": mappings})
    problems = list(found)
    if settings is not None:
        problems.extend(file_problems(settings))
        if (refused := topology_problem(settings)) is not None:
            problems.append(Problem("settings", "topology", refused))
    policy = _policy_or_none(settings.coding.mappings if settings else mappings)
    if policy is not None:
        click.echo(_mappings_summary(policy))
        if policy.site.fallback == "patient_day" and not identity_key():
            click.echo(
                f"warning: the site fallback patient_day needs {IDENTITY_KEY_ENV} (a stable secret); "
                "without it messages that name no encounter are parked missing_encounter_key",
                err=True,
            )
        if settings is not None and settings.coding.payer not in policy.payers:
            known = ", ".join(sorted(policy.payers))
            message = f"unknown payer policy '{settings.coding.payer}'; the mappings have: {known}"
            problems.append(Problem(settings.source_of("coding.payer"), "coding.payer", message))
    for problem in problems:
        click.echo(str(problem), err=True)
    if settings is not None and not problems:
        click.echo(_settings_summary(settings))
    if show:
        if settings is None:
            click.echo("settings not shown: fix the problems above first", err=True)
        else:
            for line in show_lines(settings):
                click.echo(line)
    if problems or policy is None:
        raise SystemExit(2)


def show_lines(settings: Settings) -> list[str]:
    """``key = value  (source)`` for every key, aligned, secrets redacted."""
    shown = settings.redacted()
    width = max(len(f"{key} = {value}") for key, value in shown.items())
    return [f"{f'{key} = {value}':<{width}}  ({settings.source_of(key)})" for key, value in shown.items()]


def _policy_or_none(mappings: Path | None) -> Policy | None:
    """The policy, or ``None`` after printing every mapping problem (``file:line``)."""
    from connector.policy.yamlfile import MappingError

    try:
        return policy_from_settings(mappings)
    except MappingError as error:
        for problem in error.problems:
            click.echo(f"mapping error: {problem}", err=True)
        return None


def _mappings_summary(policy: Policy) -> str:
    routes = sum(len(v) for v in policy.routes.values()) + sum(len(v) for v in policy.route_texts.values())
    methods = sum(len(v) for v in policy.methods.values()) + sum(len(v) for v in policy.method_texts.values())
    site = policy.site
    return (
        f"mappings OK: {len(policy.drugs.entries)} drugs, {routes} routes, {methods} methods, "
        f"{len(policy.chargemaster.items)} chargemaster items, payers: {', '.join(sorted(policy.payers))}; "
        f"site: {site.origin or 'shipped defaults'} ({len(site.zones)} facility zones, "
        f"identity {' > '.join(site.identity_chain)}, fallback {site.fallback}, "
        f"primary {', '.join(p for p in (site.primary_hl7, site.primary_fhir_extension) if p) or 'not read'}); "
        f"payer map: {policy.payer_map.count} identifiers; places of service: {policy.places.count} entries"
        + _cms_summary(policy)
    )


def _cms_summary(policy: Policy) -> str:
    """``; CMS tables: mue facility 2026q1 (14 codes), ptp facility 2026q1 (3 pairs)`` (empty: none loaded)."""
    cms = policy.cms
    tables = [f"mue {t.claim_type.value} {t.label} ({len(t.edits)} codes)" for t in cms.mue] + [
        f"ptp {t.claim_type.value} {t.label} ({t.count} pairs)" for t in cms.ptp
    ]
    return f"; CMS tables: {', '.join(tables)}" if tables else ""


def _settings_summary(settings: Settings) -> str:
    """``settings OK: 3 set (environment 2, /etc/ivpush.toml 1), the rest default`` (+ a note on the URL)."""
    shown = settings.redacted()
    kinds = Counter(_kind(settings.source_of(key)) for key in shown if settings.source_of(key) != "default")
    given = ", ".join(f"{kind} {count}" for kind, count in kinds.items())
    summary = f"settings OK: {sum(kinds.values())} of {len(shown)} set" + (f" ({given})" if given else "")
    summary += ", the rest default"
    if settings.amqp.url is None:
        summary += "\nnote: amqp.url is not set; consume, publish and topology need it (IVPUSH_AMQP_URL)"
    return summary


def _kind(source: str) -> str:
    if source.startswith("env "):
        return "environment"
    if source.startswith(("file ", "secret file ")):
        return "secret files"
    return source
