"""Which ``--jobs`` worker codes each archive record: records that may touch each other share one.

Records interact through the state only by what keys it: the encounter (visit number, account
number, alternate visit id, FHIR Encounter id or identifier), the patient (visit windows of
the ``visit`` step, the ``patient_day`` fallback), placer orders (the ``order`` step) and the
dedup key (a repeat is skipped). A record's encounter is not always known before the service
resolves it (a RAS without a visit number is keyed by an order link or a visit window another
message taught), so records are not sharded by encounter key. Instead every record yields the
identifier *values* it carries in those fields (``tokens``), and records sharing a value,
directly or through others, form one group (union-find). A group goes to one worker whole, so
each worker sees every record that could resolve to, duplicate or teach its encounters, in
archive order: the same inputs as ``--jobs 1`` gives each encounter.

Tokens are coarse on purpose (values without their authority or system, every repetition):
sharing more only makes groups larger, never splits one. A record whose fields the quick scan
cannot read exactly (escapes, non-ASCII or ISO 2022 bytes, MLLP framing, JSON that orjson
rejects) is read by its adapter instead, and its tokens are taken from the parsed record. A
record the adapter rejects touches no state: it is a group of its own.

Groups are assigned largest first to the least loaded worker (by records; ties: first seen),
so the assignment is a function of the input alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from connector.adapters.archive import Record
    from connector.cli.replay_options import ReplayOptions
    from connector.model import ParsedRecord
    from connector.policy.model import Policy

_LINE = re.compile(rb"[^\r\n]*")
_FINDERS: dict[tuple[bytes, ...], re.Pattern[bytes]] = {}
_UNSURE = (b"\x1b", b"\x00")  # ISO 2022 shifts, UTF-16: the adapter decides
# Character sets (MSH-18) whose non-ASCII bytes are never ASCII: splitting the raw bytes on the
# delimiters is then what the adapter does after decoding. Big5, GB 18030, Shift JIS … may put a
# ``|`` or ``^`` byte inside a character: a message in any other set goes to the adapter.
_BYTE_SAFE = re.compile(rb"|ASCII|UNICODE UTF-8|UTF-8|UNICODE|8859/[0-9]{1,2}", re.IGNORECASE)
_NULL = b'""'  # HL7's explicit null: no value


def assign(records: Iterable[Record], options: ReplayOptions, policy: Policy, jobs: int) -> bytearray:
    """The worker (0 … jobs - 1) of each record, in archive order."""
    parent: list[int] = []
    owner: dict[str, int] = {}

    def find(node: int) -> int:
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:
            parent[node], node = root, parent[node]
        return root

    fields = _hl7_fields(policy)
    for index, record in enumerate(records):
        parent.append(index)
        for token in tokens(record, options, policy, fields):
            held = owner.setdefault(token, index)
            if held != index:
                a, b = find(held), find(index)
                if a != b:
                    parent[max(a, b)] = min(a, b)  # the root is the group's first record
    owner.clear()
    roots = [find(i) for i in range(len(parent))]
    sizes: dict[int, int] = {}
    for root in roots:
        sizes[root] = sizes.get(root, 0) + 1
    load = [0] * jobs
    worker: dict[int, int] = {}
    for root, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        chosen = load.index(min(load))
        worker[root] = chosen
        load[chosen] += size
    return bytearray(worker[root] for root in roots)


def tokens(record: Record, options: ReplayOptions, policy: Policy, fields: dict[bytes, tuple[int, ...]]) -> set[str]:
    """The identifier values a record may key, resolve or dedup by (a superset of what its adapter reads)."""
    if record.error is not None or record.oversize or record.format not in ("hl7", "fhir"):
        return set()  # rejected whole, before any state is read
    quick = _hl7_tokens(record.data, fields) if record.format == "hl7" else _fhir_tokens(record.data)
    return quick if quick is not None else _parsed_tokens(record, options, policy)


def _hl7_fields(policy: Policy) -> dict[bytes, tuple[int, ...]]:
    """Segment → the fields read for identity: MSH-10, PID-3/18, PV1-19/50 (and the site's steps), ORC-2/4."""
    wanted: dict[bytes, set[int]] = {b"MSH": {10}, b"PID": {3, 18}, b"PV1": {19, 50}, b"ORC": {2, 4}}
    for step in policy.site.field_steps:
        name, _, number = step.partition("-")
        wanted.setdefault(name.encode(), set()).add(int(number))
    return {name: tuple(sorted(numbers)) for name, numbers in wanted.items()}


def _hl7_tokens(data: bytes, fields: dict[bytes, tuple[int, ...]]) -> set[str] | None:
    """First components of the identity fields (the whole first one, and each repetition's); None: unsure."""
    if len(data) < 8 or not data.startswith(b"MSH") or any(mark in data for mark in _UNSURE):
        return None
    separator, component, repetition, escape, sub = (data[i : i + 1] for i in range(3, 8))
    found: set[str] = set()
    header = _LINE.match(data)
    if not data.isascii():
        msh = header.group().split(separator) if header else []
        charset = msh[17].split(repetition)[0].strip() if len(msh) > 17 else b""
        if not _BYTE_SAFE.fullmatch(charset):
            return None
    segments = [(b"MSH", header.group() if header else b"")]
    segments += _finder(fields, separator).findall(data)
    for name, segment in segments:
        values = segment.split(separator)  # MSH: [MSH, MSH-2, MSH-3, …]; others: [SEG-1, SEG-2, …] (name cut)
        for number in fields[name]:
            index = number - 1
            if index >= len(values) or not values[index] or values[index] == _NULL:
                continue
            raw = values[index]
            if not raw.isascii() or escape in raw or sub in raw:
                return None
            _add(found, raw.partition(component)[0].decode("ascii"))
            if repetition in raw:
                for each in raw.split(repetition):
                    _add(found, each.partition(component)[0].decode("ascii"))
    return found


def _finder(fields: dict[bytes, tuple[int, ...]], separator: bytes) -> re.Pattern[bytes]:
    """A pattern finding every segment (but MSH) named in ``fields``: (name, the text after its separator)."""
    key = (separator, *sorted(fields))
    pattern = _FINDERS.get(key)
    if pattern is None:
        names = b"|".join(re.escape(name) for name in sorted(fields) if name != b"MSH")
        pattern = re.compile(rb"(?:^|[\r\n])(" + names + rb")" + re.escape(separator) + rb"([^\r\n]*)")
        _FINDERS[key] = pattern
    return pattern


def _fhir_tokens(data: bytes) -> set[str] | None:
    """Ids of the resources (Bundle entries too) and of the Encounters they reference; None: unsure."""
    from connector.adapters.fhir.fields import parse_reference

    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    found: set[str] = set()
    pending = [document]
    while pending:
        resource = pending.pop()
        _add_text(found, resource.get("id"))
        for name in ("context", "encounter"):
            reference = resource.get(name)
            if isinstance(reference, list):
                return None
            if not isinstance(reference, dict):
                continue
            literal = reference.get("reference")
            if isinstance(literal, str):
                _add(found, literal)
                parsed = parse_reference(literal.strip())
                if parsed is not None:
                    _add(found, parsed[2])
            logical = reference.get("identifier")
            if isinstance(logical, dict):
                _add_text(found, logical.get("value"))
        for entry in _entries(resource):
            pending.append(entry)
    return found


def _entries(resource: dict[str, object]) -> Iterator[dict[str, object]]:
    entries = resource.get("entry")
    if isinstance(entries, list):
        for entry in entries:
            inner = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(inner, dict):
                yield inner


def _parsed_tokens(record: Record, options: ReplayOptions, policy: Policy) -> set[str]:
    """The tokens of what the adapter reads (each key's values after every ``|``); none when it rejects."""
    from connector.adapters.dispatch import read_record
    from connector.adapters.errors import AdapterError

    try:
        parsed = read_record(record, policy, options.zone, options.max_bytes, window=options.window).records
    except AdapterError:
        return set()
    found: set[str] = set()
    for item in parsed:
        for key in keys_of(item):
            found |= forms(key)
        found |= dedup_forms(item.dedup_key)
    return found


def keys_of(item: ParsedRecord) -> Iterator[str]:
    """The keys a parsed record reads or writes state by, besides its dedup key (encounters, orders, patients)."""
    yield from (admin.encounter_key for admin in item.administrations)
    yield from (event.encounter.key for event in item.encounter_events)
    yield from item.order_ids
    if item.visit is not None:
        yield item.visit.patient_key
        yield item.visit.encounter_key
    if item.unresolved is not None:
        yield item.unresolved.patient_key
        yield from item.unresolved.placer_ids


def forms(key: str) -> set[str]:
    """A key's values as the quick scan reads them: the key, and what follows each ``|`` (authority, system)."""
    found: set[str] = set()
    rest = key
    _add(found, rest)
    while "|" in rest:
        rest = rest.partition("|")[2]
        _add(found, rest)
    return found


def dedup_forms(dedup_key: str) -> set[str]:
    """The values of a dedup key: the HL7 control id (``type|facility|id``), the FHIR id (``Type/id/…``)."""
    found: set[str] = set()
    _add(found, dedup_key.rpartition("|")[2])
    if "/" in dedup_key:
        _add(found, dedup_key.split("/")[1])
    return found


def _add_text(found: set[str], value: object) -> None:
    if isinstance(value, str):
        _add(found, value)


def _add(found: set[str], value: str) -> None:
    """The value as sent and trimmed (identifiers are trimmed of Unicode whitespace; a dedup key is not)."""
    for form in (value, value.strip()):
        if form:
            found.add(form)
