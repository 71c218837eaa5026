"""``ivpush demo``: replay the bundled sample feeds and print the charge lines per encounter."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import click

from connector.bootstrap import local_zone
from connector.cli.options import load_or_exit, mappings_option
from connector.cli.replay import ReplayOptions, run
from connector.shipped import shipped_dir

FEEDS = shipped_dir("demo_feeds", "examples/feeds")


def table(ndjson: bytes) -> str:
    """Net charge lines (charges minus credits) per encounter, as a readable table."""
    current: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    heads: dict[str, str] = {}
    for text in ndjson.splitlines():
        message = json.loads(text)
        enc = message["encounter"]
        key = f"{enc['assigning_authority']}|{enc['id']}"
        heads[key] = f"{enc['id']} — {enc['patient_class']}, {message['claim_type']} claim, payer {message['policy']}"
        for line in message["lines"]:
            if line["action"] == "charge":
                current[key][line["line_id"]] = line
            else:
                current[key].pop(line["line_id"], None)
    out: list[str] = []
    for key in sorted(current):
        out.append(f"Encounter {heads[key]}")
        out.append(f"  {'date':<10}  {'code':<5}  {'mods':<5}  {'units':>5}  {'rev':<4}  {'charge':<9}  reason")
        for line in sorted(current[key].values(), key=lambda ln: (ln["service_date"], ln["code"])):
            mods = ",".join(line["modifiers"]) or "-"
            out.append(
                f"  {line['service_date']:<10}  {line['code']:<5}  {mods:<5}  {line['units']:>5}  "
                f"{line['revenue_code']:<4}  {line['charge_code']:<9}  {line['reason']}"
            )
        out.append("")
    return "\n".join(out)


@click.command()
@click.argument("paths", nargs=-1)
@click.option("--zone", default="America/New_York", show_default=True, help="Zone of the sample feeds' local times.")
@mappings_option
def demo(paths: tuple[str, ...], zone: str, mappings: Path | None) -> None:
    """Replay the bundled sample feeds (or PATHS) and print the charges per encounter."""
    policy = load_or_exit(mappings)
    sources = paths or (str(FEEDS),)
    buffer = io.BytesIO()
    report = run(ReplayOptions(paths=sources, zone=local_zone(zone)), policy, buffer)
    click.echo(table(buffer.getvalue()))
    click.echo(report.summary())
