"""``open_store``: which store a ``--state``/``IVPUSH_STATE`` spec names, and what its errors say."""

import sys

import pytest

from connector.bootstrap import StoreOpenError, open_store, store_label
from connector.store.memory import MemoryStore


def test_memory_is_named_by_the_sqlite_convention() -> None:
    assert isinstance(open_store(":memory:"), MemoryStore)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_postgres_url_without_psycopg_says_which_extra_to_install(
    scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "connector.store.postgres", None)  # import fails as without the extra
    with pytest.raises(StoreOpenError, match=r"ivpush\[postgres\]") as raised:
        open_store(f"{scheme}://ivpush:s3cret@db.example/ivpush")
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("postgresql://ivpush:s3cret@db:5432/ivpush", "postgresql://ivpush:***@db:5432/ivpush"),
        (
            "postgresql://db/ivpush?sslmode=require&password=s3cret",
            "postgresql://db/ivpush?sslmode=require&password=***",
        ),
        ("postgresql://ivpush@db/ivpush", "postgresql://ivpush@db/ivpush"),
        ("/var/lib/ivpush/state.db", "/var/lib/ivpush/state.db"),
    ],
)
def test_store_labels_never_show_a_password(spec: str, shown: str) -> None:
    assert store_label(spec) == shown
