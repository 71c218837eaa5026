"""``ivpush synth``: write a synthetic HL7 v2 or FHIR feed archive, deterministic by seed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from connector.synth.render import FORMATS, write_feed


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), required=True, help="hl7: RAS^O17 + ADT^A03; fhir: NDJSON."
)
@click.option("--encounters", type=click.IntRange(min=1), help="How many encounters (about 22 records each).")
@click.option(
    "--records", type=click.IntRange(min=1), help="Stop starting encounters at this many records (instead of a count)."
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True, help="File to write, or -."
)
def synth(fmt: str, encounters: int | None, records: int | None, seed: int, out_path: Path) -> None:
    """Write a synthetic ED/observation feed for benchmarks and tests (no real patient data)."""
    if (encounters is None) == (records is None):
        raise click.UsageError("give exactly one of --encounters and --records")
    if str(out_path) == "-":
        stats = write_feed(sys.stdout.buffer, fmt, seed, encounters, records)
    else:
        with out_path.open("wb") as out:
            stats = write_feed(out, fmt, seed, encounters, records)
    click.echo(
        f"wrote {stats.records} records ({stats.encounters} encounters, {stats.administrations} administrations, "
        f"{stats.corrections} corrections, {stats.bytes} bytes)",
        err=True,
    )
