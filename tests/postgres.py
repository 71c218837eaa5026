"""Real-PostgreSQL test helpers: the local cluster, fresh schemas and databases.

The cluster is the one ``make test`` started (``IVPUSH_TEST_POSTGRES_URL`` in the environment),
else one started here with ``deploy/local/postgres.sh`` in a temporary directory on its own
port (and stopped at exit). When none can be had, tests **fail** under CI (``CI`` set) and skip
otherwise. Opening a ``PostgresStore`` starts pool threads: never do it in a process that then
forks consumers (``broker.ForkedConsumer``) — use plain connections there.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "deploy" / "local" / "postgres.sh"
URL_ENV = "IVPUSH_TEST_POSTGRES_URL"
IN_CI = bool(os.environ.get("CI"))
OWN_PORT = "46432"  # a cluster started by the tests themselves (make test's cluster uses 45432)


def missing(reason: str) -> None:
    """No PostgreSQL: a failure under CI, a skip on a developer's machine."""
    if IN_CI:
        pytest.fail(f"PostgreSQL required under CI: {reason}", pytrace=False)
    pytest.skip(f"no local PostgreSQL: {reason}")


@dataclass(frozen=True)
class LocalPostgres:
    """A reachable cluster; ``url`` names a database the tests may create schemas in."""

    url: str

    def connect(self, url: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(url or self.url, autocommit=True, connect_timeout=10)

    @staticmethod
    def with_path(url: str, database: str | None = None, query: str | None = None) -> str:
        """``url`` with another database and/or query (a URL still: ``ivpush --state`` takes URLs)."""
        parts = urlsplit(url)
        path = f"/{database}" if database is not None else parts.path
        return parts._replace(path=path, query=query if query is not None else parts.query).geturl()

    @contextmanager
    def fresh_schema(self, prefix: str = "t") -> Iterator[str]:
        """A new empty schema; yields a DSN whose search_path selects it. Dropped afterwards."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        try:
            yield self.with_path(self.url, query=f"options={quote(f'-c search_path={name}')}")
        finally:
            with self.connect() as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))

    @contextmanager
    def fresh_database(self, prefix: str = "t") -> Iterator[str]:
        """A new empty database; yields its URL. Dropped afterwards (its sessions ended first)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield self.with_path(self.url, database=name)
        finally:
            with self.connect() as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


_session: dict[str, LocalPostgres | str] = {}  # "cluster" → the cluster, or "failure" → why there is none


def _reachable(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


def local_postgres() -> LocalPostgres:
    """The session's cluster (started on first use); fails under CI / skips locally when impossible."""
    found = _session.get("cluster")
    if isinstance(found, LocalPostgres):
        return found
    if "failure" not in _session:
        _session.update(_start())
    found = _session.get("cluster")
    if isinstance(found, LocalPostgres):
        return found
    missing(str(_session.get("failure")))
    raise AssertionError("unreachable")


def _start() -> dict[str, LocalPostgres | str]:
    url = os.environ.get(URL_ENV)
    if url and _reachable(url):
        return {"cluster": LocalPostgres(url)}
    folder = tempfile.mkdtemp(prefix="ivpush-postgres-")
    env = {**os.environ, "IVPUSH_POSTGRES_DIR": folder, "IVPUSH_POSTGRES_PORT": OWN_PORT}
    try:
        result = subprocess.run(
            [str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"failure": f"deploy/local/postgres.sh start: {error}"}
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        return {"failure": f"deploy/local/postgres.sh start failed: {result.stderr.strip()[-800:]}"}
    atexit.register(_stop_owned, env, folder)
    return {"cluster": LocalPostgres(result.stdout.strip().splitlines()[-1])}


def _stop_owned(env: dict[str, str], folder: str) -> None:
    subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120, check=False)
    shutil.rmtree(folder, ignore_errors=True)
