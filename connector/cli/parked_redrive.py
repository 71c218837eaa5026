"""``ivpush parked requeue|purge|policy``: re-drive, drop, and expire parked messages.

``requeue`` re-publishes the selected messages (or the records of an edited export, ``--from
FILE``) with publisher confirms, and only then removes their parked copies: inputs go to the
input exchange (the consumer's dedup makes a requeue of an input already applied a duplicate),
refused DFT messages (``--queue out.dft``) back to the DFT output queue for ``ivpush forward``.
``purge`` removes the selected messages for good. Without a filter both need ``--all``.
``policy`` prints the RabbitMQ policy that expires parked messages after
``retention.parked_days`` (see ``connector.config.retention`` for why a policy).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connector.cli.parked_options import Place, connected, filter_options, place_options, resolve, selector

if TYPE_CHECKING:  # the bus (pika) and the settings model are imported when a command runs (#15)
    from connector.bus.parked import Parked, Selector

DAY_MS = 86_400_000
# RabbitMQ < 4.3 counts every message handed back to a quorum queue as a delivery, and 4.x drops
# a message after 20 by default: a parking queue that is read often must not have that limit.
PARKING_DELIVERY_LIMIT = 1_000_000


@click.command()
@place_options
@filter_options
@click.option("--from", "from_file", type=click.Path(dir_okay=False, path_type=Path), help="Records of an export.")
@click.option("--all", "everything", is_flag=True, help="Requeue every parked message (no filter given).")
@click.option("--dry-run", is_flag=True, help="Count what would be requeued; change nothing.")
def requeue(
    config_path: Path | None,
    queue_label: str,
    prefix: str | None,
    from_file: Path | None,
    everything: bool,
    dry_run: bool,
    **options: Any,
) -> None:
    """Re-publish parked messages (selected, or fixed in an export file) and remove them once confirmed."""
    from connector.bus.redrive import browse
    from connector.bus.redrive import requeue as requeue_selected

    place = resolve(config_path, queue_label, prefix)
    if from_file is not None:
        if everything or not selector(options).everything:
            raise click.UsageError("--from FILE requeues the records of the file: give no filter and no --all")
        _requeue_file(place, from_file, dry_run)
        return
    chosen = _chosen(options, everything)
    with connected(place) as reader:
        if dry_run:
            tally = browse(reader, place.queue, chosen, _nothing, options.get("limit"))
        else:
            tally = requeue_selected(reader, place.queue, chosen, place.target, options.get("limit"))
    tally.log("requeue (dry run)" if dry_run else "requeue", place.queue, chosen.describe())
    if dry_run:
        click.echo(f"would requeue {tally.matched} of {tally.scanned} parked messages in {place.queue}", err=True)
        return
    _report(place, tally.matched, tally.done, tally.failed, tally.removed)


@click.command()
@place_options
@filter_options
@click.option("--all", "everything", is_flag=True, help="Purge every parked message (no filter given).")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; change nothing.")
def purge(
    config_path: Path | None, queue_label: str, prefix: str | None, everything: bool, dry_run: bool, **options: Any
) -> None:
    """Remove the selected parked messages for good (e.g. --older-than 90d)."""
    from connector.bus.redrive import browse
    from connector.bus.redrive import purge as purge_selected

    place = resolve(config_path, queue_label, prefix)
    chosen = _chosen(options, everything)
    with connected(place) as reader:
        if dry_run:
            tally = browse(reader, place.queue, chosen, _nothing, options.get("limit"))
        else:
            tally = purge_selected(reader, place.queue, chosen, options.get("limit"))
    tally.log("purge (dry run)" if dry_run else "purge", place.queue, chosen.describe())
    verb = "would purge" if dry_run else "purged"
    click.echo(f"{verb} {tally.matched} of {tally.scanned} parked messages in {place.queue}", err=True)


@click.command()
@place_options
@click.option("--days", type=click.FloatRange(min=0, min_open=True), help="Expiry [default: retention.parked_days].")
@click.option("--json", "as_json", is_flag=True, help="The policy as a definitions-file entry instead of a command.")
def policy(config_path: Path | None, queue_label: str, prefix: str | None, days: float | None, as_json: bool) -> None:
    """Print the RabbitMQ policy that expires parked messages (both parking queues) for an administrator."""
    from connector.config.topology import build_topology

    place = resolve(config_path, queue_label, prefix)
    settings = place.settings
    ttl = round(days * DAY_MS) if days else settings.retention.message_ttl
    topology = build_topology(settings)
    forward = settings.forward.forward_settings(topology.output_queue("dft"))
    queues = sorted({topology.parking_queue, forward.parking_queue})
    pattern = "^(" + "|".join(re.escape(name) for name in queues) + ")$"
    definition: dict[str, Any] = {"delivery-limit": PARKING_DELIVERY_LIMIT}
    if ttl:
        definition["message-ttl"] = ttl
    name = f"{settings.amqp.prefix}-parking"
    if as_json:
        entry = {"vhost": topology.vhost, "name": name, "pattern": pattern, "apply-to": "queues", "priority": 20}
        click.echo(json.dumps(entry | {"definition": definition}, indent=2))
        return
    arguments = ["set_policy", "--vhost", topology.vhost, "--apply-to", "queues", "--priority", "20", name, pattern]
    click.echo("rabbitmqctl " + shlex.join([*arguments, json.dumps(definition, separators=(",", ":"))]))
    if not ttl:
        click.echo("no expiry: set retention.parked_days (or --days) to expire parked messages", err=True)


def _nothing(_found: Parked) -> None:
    """A dry run only counts."""


def _chosen(options: dict[str, Any], everything: bool) -> Selector:
    chosen = selector(options)
    if chosen.everything and not everything:
        raise click.UsageError("give a filter (--code, --id, --source, --since, --until, --older-than) or --all")
    return chosen


def _requeue_file(place: Place, path: Path, dry_run: bool) -> None:
    from connector.bus.parked_records import Record, RecordError, read_records
    from connector.bus.redrive import requeue_records

    try:
        with path.open(encoding="utf-8") as lines:
            found = list(read_records(lines))
    except (OSError, UnicodeDecodeError) as error:
        raise click.UsageError(f"cannot read {path}: {error.__class__.__name__}") from None
    records = [item for item in found if isinstance(item, Record)]
    problems = [str(item) for item in found if isinstance(item, RecordError)]
    foreign = [r for r in records if r.parking_queue and r.parking_queue != place.queue]
    problems += [f"line {r.line}: exported from {r.parking_queue}, not {place.queue} (see --queue)" for r in foreign]
    records = [r for r in records if r not in foreign]
    for problem in problems:
        click.echo(f"error: {path}: {problem}", err=True)
    if dry_run:
        click.echo(f"would requeue {len(records)} records of {path} ({len(problems)} unusable)", err=True)
    elif records:
        with connected(place) as reader:
            tally = requeue_records(reader, place.queue, records, place.target)
        tally.log("requeue from file", place.queue, f"{len(records)} records")
        _report(place, len(records), tally.done, tally.failed, tally.removed)
    if problems:
        raise SystemExit(1)


def _report(place: Place, matched: int, done: int, failed: int, removed: int) -> None:
    where = "the input exchange" if place.label == "in" else f"the queue {place.target.routing_key}"
    click.echo(
        f"requeued {done} of {matched} to {where}; {removed} parked copies removed from {place.queue}"
        + (f"; {failed} not confirmed (still parked: run again)" if failed else ""),
        err=True,
    )
    if failed:
        raise SystemExit(1)
