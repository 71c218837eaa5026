"""``ivpush demo``: replay the bundled sample feeds and print, per encounter, the charges and the rest.

The bundled feeds (``examples/feeds``) are an ED visit whose registration (ADT^A04) names a
BCBS coverage, an infusion-clinic visit whose registration names two coverages (the primary is
chosen by IN1-22 priority) and whose premedication carries a local route code the shipped
mappings lack, and a FHIR observation stay without insurance. Per encounter the demo prints the
charge lines, then every administration that got no line or needs review, with its reason.

The claim type is one per run (``--claim-type``, ``coding.claim_type``), so the demo codes the
feeds twice: facility claims (the default), then professional claims, where BCBS writes off
drug administration in a facility place of service (coding-rules.md §7; the ED is POS 23).
``make demo`` runs the facility part live, through RabbitMQ and ``ivpush consume``
(``connector.cli.live_demo``), and this replay when no broker can be started. With ``--state
FILE`` the facility part is kept in a new SQLite state, and the demo ends with the command that
opens the review console on it (``console_line``).
"""

from __future__ import annotations

import io
from datetime import tzinfo
from pathlib import Path

import click

from connector.bootstrap import local_zone, open_store
from connector.cli.demo_table import read_notes, table
from connector.cli.options import load_or_exit, mappings_option
from connector.cli.replay import ReplayOptions, run
from connector.model import ClaimType
from connector.policy.model import Policy
from connector.shipped import shipped_dir

__all__ = ["FEEDS", "console_line", "demo", "facility_heading", "new_state", "professional_section", "section", "table"]

FEEDS = shipped_dir("demo_feeds", "examples/feeds")
ZONE = "America/New_York"
SITE_NOTE = (
    "Payers, places of service, the primary flag and local codes come from a site's mappings: "
    "docs/site-setup.md (in a checkout: ivpush demo --mappings examples/site)."
)


def facility_heading(how: str) -> str:
    """The heading of the facility part; ``how`` says how the feeds were coded."""
    return f"== Facility claims (claim type facility, the default): {how} =="


PROFESSIONAL_HEADING = (
    "== Professional claims: the same feeds replayed with --claim-type professional "
    "(one claim type per run: --claim-type, coding.claim_type) =="
)


def console_line(state: Path) -> str:
    """The demo's last line: how to open the review console on its state."""
    return f"open the review console on the demo's state: ivpush serve --state {state}  (then http://127.0.0.1:8080/)"


def new_state(path: Path | None) -> Path | None:
    """``--state``: a SQLite file that does not exist yet (its folder made), or exit 2."""
    if path is not None:
        if path.exists():
            raise click.UsageError(f"{path} exists: the demo writes a new state (remove it, or choose another file)")
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def section(
    sources: tuple[str, ...], zone: tzinfo | None, policy: Policy, claim_type: ClaimType, state: Path | None = None
) -> str:
    """Replay ``sources`` into a throwaway state (or ``state``) and print the table, its notes and the summary."""
    store = open_store(str(state) if state is not None else ":memory:")
    try:
        buffer = io.BytesIO()
        report = run(ReplayOptions(paths=sources, zone=zone, claim_type=claim_type), policy, buffer, store=store)
        notes = read_notes(store, policy)
    finally:
        store.close()
    return f"{table(buffer.getvalue(), notes)}\n{report.summary()}"


def professional_section(sources: tuple[str, ...], zone: tzinfo | None, policy: Policy) -> str:
    """The professional part: heading, table and summary."""
    return f"\n{PROFESSIONAL_HEADING}\n{section(sources, zone, policy, ClaimType.PROFESSIONAL)}\n\n{SITE_NOTE}"


@click.command()
@click.argument("paths", nargs=-1)
@click.option("--zone", default=ZONE, show_default=True, help="Zone of the sample feeds' local times.")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the facility claims' state in this new SQLite file (for ivpush serve).",
)
@mappings_option
def demo(paths: tuple[str, ...], zone: str, state: Path | None, mappings: Path | None) -> None:
    """Replay the bundled sample feeds (or PATHS) and print the charges and uncharged administrations per encounter."""
    policy = load_or_exit(mappings)
    sources = paths or (str(FEEDS),)
    site_zone = local_zone(zone)
    kept = new_state(state)
    click.echo(facility_heading("the feeds replayed through the coding service (no broker)"))
    click.echo(section(sources, site_zone, policy, ClaimType.FACILITY, kept))
    click.echo(professional_section(sources, site_zone, policy))
    if kept is not None:
        click.echo(f"\n{console_line(kept)}")
