"""Retention (issue #14, item 5): the consumer's purge, its settings, `ivpush state purge`, `parked policy`."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.bus.retention import Retention
from connector.cli.main import cli
from connector.config.retention import RetentionSection
from connector.observability.metrics import Metrics
from connector.store.base import OutboxRow, Purged
from connector.store.memory import MemoryStore
from connector.store.sqlite import SqliteStore

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_consumer_purges_what_is_older_than_the_setting_on_schedule() -> None:
    wall, steady = Clock(), Clock()
    store = MemoryStore(clock=wall)
    with store.transaction() as tx:
        tx.mark_seen("old")
        tx.enqueue(OutboxRow("m-old", "E", "json", b"1"))
    store.mark_sent([("m-old", "json")])
    wall.now += 10 * DAY
    with store.transaction() as tx:
        tx.mark_seen("recent")
    metrics = Metrics()
    retention = Retention(store, 7 * DAY, 3600.0, metrics, clock=wall, monotonic=steady)
    assert retention.due()  # at start
    assert retention.run() == Purged(dedup_keys=1, outbox_rows=1)
    with store.transaction() as tx:
        assert (tx.is_seen("old"), tx.is_seen("recent")) == (False, True)
    assert metrics.value("ivpush_state_purged_rows_total", table="seen") == 1
    assert metrics.value("ivpush_state_purged_rows_total", table="outbox") == 1
    assert metrics.value("ivpush_state_purges_total", outcome="ok") == 1
    assert metrics.value("ivpush_state_purge_last_success_timestamp_seconds") == wall.now
    assert not retention.due()
    steady.now += 3600
    assert retention.due()


def test_a_run_that_hits_its_limit_is_followed_at_once_by_another() -> None:
    wall, steady = Clock(), Clock()
    store = MemoryStore(clock=wall)
    with store.transaction() as tx:
        for n in range(5):
            tx.mark_seen(f"k{n}")
    wall.now += 10 * DAY
    retention = Retention(store, DAY, 3600.0, Metrics(), limit=2, clock=wall, monotonic=steady)
    runs = []
    while retention.due():
        runs.append(retention.run())
    assert runs == [Purged(2, 0), Purged(2, 0), Purged(1, 0)]


class Broken(MemoryStore):
    def purge(self, older_than: float, limit: int | None = None) -> Purged:
        raise sqlite3.OperationalError("database is locked: DOE^JANE")


def test_a_failed_purge_is_counted_logged_without_its_text_and_retried_later(caplog: pytest.LogCaptureFixture) -> None:
    steady = Clock()
    metrics = Metrics()
    retention = Retention(Broken(), DAY, 60.0, metrics, monotonic=steady)
    with caplog.at_level(logging.WARNING, "ivpush.bus"):
        assert retention.run() is None
    assert "OperationalError" in caplog.text and "DOE" not in caplog.text
    assert metrics.value("ivpush_state_purges_total", outcome="failed") == 1
    assert not retention.due()
    steady.now += 60
    assert retention.due()


def test_dedup_keys_must_outlive_parked_messages() -> None:
    assert RetentionSection(parked_days=30, state_days=90).keep_seconds == 90 * DAY
    assert RetentionSection().keep_seconds is None and RetentionSection().message_ttl is None
    assert RetentionSection(parked_days=0.5).message_ttl == 43_200_000
    with pytest.raises(ValueError, match=r"must be at least retention.parked_days \(30\)"):
        RetentionSection(parked_days=30, state_days=7)


def test_parked_policy_prints_the_rabbitmqctl_command_for_both_parking_queues() -> None:
    env = {"IVPUSH_RETENTION__PARKED_DAYS": "14"}
    result = CliRunner().invoke(cli, ["parked", "policy", "--prefix", "site"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "rabbitmqctl set_policy --vhost / --apply-to queues --priority 20 site-parking "
        "'^(site\\.out\\.dft\\.parking|site\\.parking)$' "
        '\'{"delivery-limit":1000000,"message-ttl":1209600000}\''
    )
    entry = json.loads(CliRunner().invoke(cli, ["parked", "policy", "--json", "--days", "1"]).output)
    assert entry["definition"] == {"delivery-limit": 1000000, "message-ttl": 86_400_000}
    assert entry["name"] == "ivpush-parking" and entry["apply-to"] == "queues"


def test_parked_commands_that_change_the_queue_need_a_filter_or_all() -> None:
    env = {"IVPUSH_AMQP_URL": "amqp://u:p@127.0.0.1:1/%2F"}
    for command in (["requeue"], ["purge"], ["export"]):
        result = CliRunner().invoke(cli, ["parked", *command], env=env)
        assert result.exit_code == 2 and "or --all" in result.output
    mixed = CliRunner().invoke(cli, ["parked", "requeue", "--from", "x.ndjson", "--code", "not_hl7"], env=env)
    assert mixed.exit_code == 2 and "give no filter" in mixed.output


def test_a_bad_age_is_refused_before_anything_is_touched() -> None:
    env = {"IVPUSH_AMQP_URL": "amqp://u:p@127.0.0.1:1/%2F"}
    result = CliRunner().invoke(cli, ["parked", "purge", "--older-than", "a while"], env=env)
    assert result.exit_code == 2 and "is not an age such as 30m, 12h, 7d or 2w" in result.output


def test_state_purge_deletes_old_keys_and_sent_rows_of_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(str(path))
    with store.transaction() as tx:
        tx.mark_seen("old")
        tx.mark_seen("new")
        tx.enqueue(OutboxRow("m-old", "E", "json", b"1"))
        tx.enqueue(OutboxRow("m-pending", "E", "json", b"2"))
    store.mark_sent([("m-old", "json")])
    store.close()
    db = sqlite3.connect(path)
    with db:  # age what the test calls old: 40 days
        db.execute("UPDATE seen SET seen_at = seen_at - ? WHERE dedup_key = 'old'", (40 * DAY,))
        db.execute("UPDATE outbox SET sent_at = sent_at - ? WHERE message_id = 'm-old'", (40 * DAY,))
    db.close()
    runner = CliRunner()
    assert runner.invoke(cli, ["state", "purge", "--state", str(path)]).exit_code == 2  # no age given
    result = runner.invoke(cli, ["state", "purge", "--state", str(path)], env={"IVPUSH_RETENTION__STATE_DAYS": "30"})
    assert result.exit_code == 0, result.output
    assert "deleted 1 dedup keys and 1 sent outbox rows older than 30 days" in result.output
    store = SqliteStore(str(path))
    with store.transaction() as tx:
        assert (tx.is_seen("old"), tx.is_seen("new")) == (False, True)
    assert [row.message_id for row in store.pending()] == ["m-pending"]
    store.close()
    again = runner.invoke(cli, ["state", "purge", "--state", str(path), "--older-than", "30d"])
    assert "deleted 0 dedup keys and 0 sent outbox rows" in again.output
