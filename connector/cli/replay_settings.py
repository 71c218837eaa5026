"""The coding settings a replay's state was built under: recorded in the state, checked before coding more.

A replay with ``--state`` records in the store's meta the settings that decide what its lines
are: the zone (``--zone``), the claim type, the default payer policy (``--policy``) and a
digest of the mapping files (the shipped ``mappings/`` and the site's directory: every
``*.yaml`` and ``payers/*.yaml``, by name and bytes). A later ``--state`` or ``--diff-against``
run under other settings would credit and re-charge lines that only the settings changed, so
it stops before writing anything (exit 2, one line naming the first difference) unless
``--recode`` is given; then it codes under the new settings and says so in its summary. The
settings are recorded once a run is through, so an interrupted recode is refused again until
it is run to its end with ``--recode``.

A state that holds no record (one built before settings were recorded, or by ``ivpush
consume``) is not refused: the run records its settings and its summary says the state had
none.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from connector.bootstrap import MAPPINGS_ENV

if TYPE_CHECKING:
    from connector.store.base import Store, Transaction

PREFIX = "coding."
LABELS = {"zone": "zone", "claim_type": "claim type", "policy": "default payer policy", "mappings": "mappings"}
SHORT = 12  # hex digits of the mappings digest shown in messages


@dataclass(frozen=True)
class CodingSettings:
    """What decides a state's lines besides its inputs.

    Attributes:
        zone: The default zone's name (``--zone``).
        claim_type: ``facility`` or ``professional``.
        policy: The default payer policy (``--policy``).
        mappings: SHA-256 (hex) of the mapping files (``mappings_digest``).
    """

    zone: str
    claim_type: str
    policy: str
    mappings: str

    def items(self) -> Iterator[tuple[str, str]]:
        """(name, value) pairs, in the order differences are named."""
        yield from zip((f.name for f in fields(self)), astuple(self), strict=True)


class SettingsChanged(Exception):
    """The state was coded under other settings and ``--recode`` was not given (the message says which)."""


def site_mappings(option: Path | None) -> Path | None:
    """The site mappings directory in effect: ``--mappings``, else ``$IVPUSH_MAPPINGS``."""
    if option is not None:
        return option
    named = os.environ.get(MAPPINGS_ENV)
    return Path(named) if named else None


def mappings_digest(site_dir: Path | None) -> str:
    """SHA-256 over the mapping files' names and bytes: the shipped defaults, then the site's overlay.

    Every ``*.yaml`` and ``payers/*.yaml`` of each directory, sorted by name; any change to a
    file (a new local code, a new payer map entry, a comment) changes the digest.
    """
    from connector.policy.loader import DEFAULT_DIR

    digest = hashlib.sha256()
    for layer, directory in enumerate([DEFAULT_DIR, *([site_dir] if site_dir else [])]):
        files = sorted(directory.glob("*.yaml")) + sorted((directory / "payers").glob("*.yaml"))
        for path in files:
            digest.update(f"{layer}:{path.relative_to(directory).as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def recorded(tx: Transaction) -> CodingSettings | None:
    """The settings recorded in the state (None when it holds none; a missing one reads as empty)."""
    values = {name: tx.get_meta(PREFIX + name) for name in LABELS}
    if all(value is None for value in values.values()):
        return None
    return CodingSettings(**{name: value or "" for name, value in values.items()})


def record(tx: Transaction, settings: CodingSettings) -> None:
    """Record the settings in the state's meta."""
    for name, value in settings.items():
        tx.set_meta(PREFIX + name, value)


def differences(old: CodingSettings, new: CodingSettings) -> list[tuple[str, str, str]]:
    """(label, old value, new value) of each setting that differs, in ``LABELS`` order."""
    return [
        (LABELS[name], shown(name, before), shown(name, after))
        for (name, before), (_, after) in zip(old.items(), new.items(), strict=True)
        if before != after
    ]


def shown(name: str, value: str) -> str:
    """A setting as messages show it (the mappings digest shortened; an empty value as ``none``)."""
    if not value:
        return "none"
    return value[:SHORT] if name == "mappings" else value


def check(store: Store, settings: CodingSettings, recode: bool, fresh: bool) -> str:
    """Check the state's recorded settings against this run's (reads only; ``remember`` records).

    Args:
        store: The state (or the ``--diff-against`` copy).
        settings: This run's settings.
        recode: ``--recode``: code under new settings instead of refusing.
        fresh: The state was just created (nothing to say when it holds no record).

    Returns:
        A note for the summary ("" when there is nothing to say).

    Raises:
        SettingsChanged: The settings differ and ``recode`` is False.
    """
    with store.transaction() as tx:
        old = recorded(tx)
    changes = differences(old, settings) if old is not None else []
    if changes and not recode:
        label, before, after = changes[0]
        raise SettingsChanged(
            f"state was coded with {label} {before}, this run uses {after}; "
            "pass --recode to recode under the new settings"
        )
    if changes:
        return "recoded under new settings: " + ", ".join(f"{name} {new} (was {was})" for name, was, new in changes)
    if old is None and not fresh:
        listed = ", ".join(f"{LABELS[name]} {shown(name, value)}" for name, value in settings.items())
        return f"the state held no record of the settings it was coded under (older state); recorded: {listed}"
    return ""


def remember(store: Store, settings: CodingSettings) -> None:
    """Record this run's settings in the state (after the run: an interrupted recode is refused again)."""
    with store.transaction() as tx:
        record(tx, settings)
