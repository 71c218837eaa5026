"""``ivpush parked list|show|export|requeue|purge|policy``: look at and re-drive parked messages.

Reading leaves the queue as it was (``connector.bus.parked``: every message read is handed back
at the end). ``list`` prints ids, codes, times and sizes, never a payload; ``show`` prints a
message's properties and headers, and its payload only with ``--payload`` (it may hold PHI).
``export`` writes the selected messages, payloads included, to an NDJSON file created mode 0600;
fix it, then ``requeue --from FILE`` (``connector.cli.parked_redrive``). Every command logs one
line with its counts and codes (never an id or a payload). The broker URL comes from the
settings, never the command line. Exit 1: the broker failed or refused; 2: bad settings or options.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from connector.cli.parked_options import connected, filter_options, place_options, resolve, selector
from connector.cli.parked_redrive import policy, purge, requeue

if TYPE_CHECKING:  # the bus (pika) is imported when a command runs (#15)
    from connector.bus.parked import Parked

PHI_WARNING = "the payload may contain PHI: show it only where that is allowed"


@click.group()
def parked() -> None:
    """List, show, export, requeue (re-drive) and purge parked messages."""


@parked.command("list")
@place_options
@filter_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message instead of a table.")
def list_(config_path: Path | None, queue_label: str, prefix: str | None, as_json: bool, **options: Any) -> None:
    """List parked messages: time parked, reject code, size, source and id (no payload)."""
    from connector.bus.redrive import browse

    place = resolve(config_path, queue_label, prefix)
    chosen = selector(options)
    if not as_json:
        click.echo(f"{'PARKED_AT':<21} {'CODE':<26} {'SIZE':>8}  {'SOURCE':<16} ID")
    with connected(place) as reader:
        tally = browse(reader, place.queue, chosen, lambda p: click.echo(_line(p, as_json)), options.get("limit"))
    tally.log("list", place.queue, chosen.describe())
    click.echo(f"{tally.matched} of {tally.scanned} parked messages in {place.queue}", err=True)


@parked.command()
@place_options
@click.argument("ids", nargs=-1, required=True)
@click.option("--payload", is_flag=True, help="Also print the message itself (it may contain PHI).")
def show(config_path: Path | None, queue_label: str, prefix: str | None, ids: tuple[str, ...], payload: bool) -> None:
    """Show the parked messages with these ids: properties, reason, headers (and the payload if asked)."""
    from connector.bus.parked import Selector
    from connector.bus.redrive import browse

    place = resolve(config_path, queue_label, prefix)
    chosen = Selector(ids=frozenset(ids))
    if payload:
        click.echo(f"warning: {PHI_WARNING}", err=True)
    with connected(place) as reader:
        tally = browse(reader, place.queue, chosen, lambda p: click.echo(_details(p, payload)))
    tally.log("show" + (" with payload" if payload else ""), place.queue, chosen.describe())
    if not tally.matched:
        click.echo(f"error: no parked message with that id in {place.queue}", err=True)
        raise SystemExit(1)


@parked.command()
@place_options
@filter_options
@click.option("--output", "-o", "output", default="-", help="File to write (created mode 0600), - for stdout.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--all", "everything", is_flag=True, help="Export every parked message (no filter given).")
def export(
    config_path: Path | None,
    queue_label: str,
    prefix: str | None,
    output: str,
    force: bool,
    everything: bool,
    **options: Any,
) -> None:
    """Write the selected messages, payloads included, as NDJSON records to fix and requeue --from."""
    from connector.bus.redrive import browse

    place = resolve(config_path, queue_label, prefix)
    chosen = selector(options)
    if chosen.everything and not everything:
        raise click.UsageError("give a filter (--code, --id, --source, --since, --until, --older-than) or --all")
    stream = sys.stdout if output == "-" else _private_file(output, force)
    try:
        with connected(place) as reader:
            write = _writer(stream, place.queue)
            tally = browse(reader, place.queue, chosen, write, options.get("limit"))
    finally:
        if stream is not sys.stdout:
            stream.close()
    tally.log("export", place.queue, chosen.describe())
    where = "stdout" if output == "-" else output
    click.echo(
        f"exported {tally.matched} of {tally.scanned} parked messages from {place.queue} to {where}: "
        "it holds their payloads (PHI): keep it private and delete it once requeued",
        err=True,
    )


parked.add_command(requeue)
parked.add_command(purge)
parked.add_command(policy)


def _line(found: Parked, as_json: bool) -> str:
    at = found.parked_at.strftime("%Y-%m-%dT%H:%M:%SZ") if found.parked_at else "-"
    source = found.source or found.delivery.routing_key or "-"
    if as_json:
        fields = {"id": found.id, "code": found.code, "detail": found.detail, "parked_at": at, "size": found.size}
        fields |= {"source": found.source, "routing_key": found.delivery.routing_key, "origin": found.origin}
        return json.dumps(fields | {"message_id": found.sender_id}, ensure_ascii=False)
    return f"{at:<21} {found.code:<26} {found.size:>8}  {source:<16} {found.id or '-'}"


def _details(found: Parked, payload: bool) -> str:
    from connector.bus.parked_records import kept_headers

    delivery = found.delivery
    at = found.parked_at.strftime("%Y-%m-%dT%H:%M:%SZ") if found.parked_at else "-"
    lines = [
        f"id:           {found.id or '-'}",
        f"code:         {found.code}",
        f"detail:       {found.detail or '-'}",
        f"parked at:    {at}",
        f"from queue:   {found.origin or '-'}",
        f"source:       {found.source or '-'}",
        f"routing key:  {delivery.routing_key or '-'}",
        f"content type: {delivery.content_type or '-'}",
        f"message id:   {found.sender_id or '-'} (the sender's)",
        f"size:         {found.size} bytes",
    ]
    lines += [f"header:       {name} = {value}" for name, value in kept_headers(delivery.headers).items()]
    if payload:
        text = delivery.body.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
        lines += ["payload:", text.rstrip("\n")]
    return "\n".join(lines) + "\n"


def _writer(stream: IO[str], queue: str) -> Callable[[Parked], None]:
    from connector.bus.parked_records import to_record

    def write(found: Parked) -> None:
        stream.write(json.dumps(to_record(found, queue), ensure_ascii=False) + "\n")

    return write


def _private_file(path: str, force: bool) -> IO[str]:
    """Open ``path`` for writing, created mode 0600 (an export holds payloads)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise click.UsageError(f"{path} exists: choose another file or give --force") from None
    except OSError as error:
        raise click.UsageError(f"cannot create {path}: {error.strerror}") from None
    return os.fdopen(descriptor, "w", encoding="utf-8")
