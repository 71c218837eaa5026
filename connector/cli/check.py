"""``ivpush check``: validate the merged mappings (shipped defaults + a site overlay)."""

from __future__ import annotations

from pathlib import Path

import click

from connector.cli.options import load_or_exit, mappings_option


@click.command()
@mappings_option
def check(mappings: Path | None) -> None:
    """Validate mappings; exit 0 when valid, 2 with every problem (file:line) otherwise."""
    policy = load_or_exit(mappings)
    routes = sum(len(v) for v in policy.routes.values()) + sum(len(v) for v in policy.route_texts.values())
    methods = sum(len(v) for v in policy.methods.values()) + sum(len(v) for v in policy.method_texts.values())
    click.echo(
        f"mappings OK: {len(policy.drugs.entries)} drugs, {routes} routes, {methods} methods, "
        f"{len(policy.chargemaster.items)} chargemaster items, payers: {', '.join(sorted(policy.payers))}"
    )
