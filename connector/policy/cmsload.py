"""Loading the CMS tables a site imported (``<mappings>/cms/*.yaml``) into ``CmsTables``.

The files are written by ``ivpush policy import-mue`` and ``import-ptp`` (``policy.cmsimport``)
and validated here like every mapping file: each problem names ``file:line``. Tables of one kind
and claim type must differ in effective date (two quarters side by side); a site file replaces a
shipped one of the same name (none ship: ``docs/rules.md`` decision 20).

Each table's content digest (``policy.cms.table_digest``) is computed from the entries read and
must equal the ``meta.digest`` the import wrote: the policy version names it, so a file changed
after its import is refused rather than coded under a digest its meta does not show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from connector.model import ClaimType
from connector.policy.cms import (
    MAI_NAMES,
    MODIFIER_ALLOWED,
    MODIFIER_NOT_ALLOWED,
    MODIFIER_NOT_APPLICABLE,
    CmsTables,
    MueEdit,
    MueEntry,
    MueTable,
    PtpEdit,
    PtpEntry,
    PtpTable,
    table_digest,
)
from connector.policy.yamlfile import KEY_LINES, LINE, MappingFile, Problems, read

CMS_DIR = "cms"
TABLES = ("mue", "ptp")
MUE_KEYS = frozenset({"code", "value", "mai", "rationale", "source"})
PTP_KEYS = frozenset({"column_1", "column_2", "effective_from", "deleted_from", "modifier", "rationale", "source"})
_LABEL = re.compile(r"[0-9a-z][0-9a-z.-]*")
_CODE = re.compile(r"[0-9A-Z]{5}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(r"[0-9a-f]{8}")
_MODIFIERS = (MODIFIER_NOT_ALLOWED, MODIFIER_ALLOWED, MODIFIER_NOT_APPLICABLE)


def load_cms(dirs: list[Path], problems: Problems, shipped_root: Path) -> CmsTables:
    """Every ``cms/*.yaml`` of every layer, checked, as tables sorted by claim type and date."""
    by_name: dict[str, MappingFile] = {}
    for directory in dirs:
        folder = directory / CMS_DIR
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            file = read(path, problems, shipped_root)
            if file is not None:
                by_name[path.name] = file  # a site's file replaces the shipped one of the same name
    mue: list[MueTable] = []
    ptp: list[PtpTable] = []
    seen: dict[tuple[str, ClaimType, object], str] = {}
    for file in by_name.values():
        head = _meta(file, problems)
        if head is None:
            continue
        table, claim_type, effective, label, source, hashes, recorded = head
        meta = file.data.get("meta")
        where = file.where(meta)
        for key in ((table, claim_type, effective), (table, claim_type, label)):
            if key in seen:
                what = f"effective date {effective.isoformat()}" if key[2] == effective else f"quarter {label}"
                problems.add(where, f"{table} {claim_type.value} {what} is also loaded from {seen[key]}")
            seen[key] = where
        before = len(problems.items)
        entries: list[MueEntry] | list[PtpEntry]
        if table == "mue":
            edits, entries = _mue(file, source, problems)
        else:
            by_column2, entries = _ptp(file, source, problems)
        digest = table_digest(table, claim_type, effective, hashes, entries)
        if len(problems.items) == before and digest != recorded:  # entries that load, changed after the import
            problems.add(
                file.where(meta, "digest"),
                f"meta.digest {recorded!r} is not the digest of the entries ({digest!r}): the file changed after "
                f"ivpush policy import-{table} wrote it; re-import the CMS file rather than editing it",
            )
        if table == "mue":
            mue.append(MueTable(label, claim_type, effective, source, file.label, edits, digest))
        else:
            ptp.append(PtpTable(label, claim_type, effective, source, file.label, by_column2, digest))
    return CmsTables(
        tuple(sorted(mue, key=lambda t: (t.claim_type.value, t.effective_from))),
        tuple(sorted(ptp, key=lambda t: (t.claim_type.value, t.effective_from))),
    )


def _meta(file: MappingFile, problems: Problems) -> tuple[str, ClaimType, date, str, str, list[str], str] | None:
    """The table, claim type, effective date, quarter, source files, their SHA-256 and the recorded digest."""
    meta = file.data.get("meta")
    if not isinstance(meta, Mapping):
        return None  # ``read`` reported it
    ok = True
    table = meta.get("table")
    if table not in TABLES:
        problems.add(file.where(meta, "table"), f"meta.table must be one of {list(TABLES)}")
        ok = False
    try:
        claim_type = ClaimType(str(meta.get("claim_type")))
    except ValueError:
        problems.add(file.where(meta, "claim_type"), "meta.claim_type must be facility or professional")
        ok = False
    effective = meta.get("effective_from")
    if not isinstance(effective, date):
        problems.add(file.where(meta, "effective_from"), "meta.effective_from must be a date (YYYY-MM-DD)")
        ok = False
    label = str(meta.get("quarter") or "")
    if not _LABEL.fullmatch(label):
        problems.add(file.where(meta, "quarter"), "meta.quarter must be a label such as 2026q1 (a-z, 0-9, '.', '-')")
        ok = False
    sources = meta.get("source_files")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources):
        problems.add(file.where(meta, "source_files"), "meta.source_files must list the CMS file names imported")
        ok = False
    hashes = meta.get("source_sha256")
    if (
        not isinstance(hashes, list)
        or not all(isinstance(h, str) and _SHA256.fullmatch(h) for h in hashes)
        or (isinstance(sources, list) and len(hashes) != len(sources))
    ):
        problems.add(
            file.where(meta, "source_sha256"),
            "meta.source_sha256 must list the SHA-256 (64 hex digits) of each file of meta.source_files",
        )
        ok = False
    recorded = meta.get("digest")
    if not isinstance(recorded, str) or not _DIGEST.fullmatch(recorded):
        problems.add(
            file.where(meta, "digest"),
            "meta.digest must be the 8 hex digits the import wrote (the entries' digest): re-import the CMS file",
        )
        ok = False
    if not ok or not isinstance(effective, date) or not isinstance(sources, list) or not isinstance(hashes, list):
        return None
    return (
        str(table),
        claim_type,
        effective,
        label,
        ", ".join(str(s) for s in sources),
        [str(h) for h in hashes],
        str(recorded),
    )


def _source(row: Mapping[str, Any], fallback: str) -> str:
    """The CMS file name an entry came from (its ``source`` is ``name:line``)."""
    text = row.get("source")
    return str(text).rsplit(":", 1)[0] if isinstance(text, str) and text else fallback


def _mue(file: MappingFile, source: str, problems: Problems) -> tuple[dict[str, MueEdit], list[MueEntry]]:
    """The edits by code, and the entries as read (for the digest)."""
    edits: dict[str, MueEdit] = {}
    entries: list[MueEntry] = []
    for row in file.rows("entries", problems):
        _unknown(file, row, MUE_KEYS, problems)
        code, value, mai = row.get("code"), row.get("value"), row.get("mai")
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            problems.add(file.where(row, "code"), 'code must be quoted text of 5 letters or digits, e.g. "96374"')
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.add(file.where(row, "value"), f"value must be a whole number ≥ 0: {value!r}")
        elif mai not in MAI_NAMES or isinstance(mai, bool):
            problems.add(file.where(row, "mai"), f"mai must be 1, 2 or 3 (MUE adjudication indicator): {mai!r}")
        elif code in edits:
            problems.add(file.where(row), f"duplicate of the entry at {edits[code].origin}")
        else:
            rationale = str(row.get("rationale") or "")
            edits[code] = MueEdit(code, value, int(mai), rationale, file.where(row), _source(row, source))
            entries.append((code, value, int(mai), rationale, str(row.get("source") or "")))
    return edits, entries


def _ptp(file: MappingFile, source: str, problems: Problems) -> tuple[dict[str, tuple[PtpEdit, ...]], list[PtpEntry]]:
    """The edits by column-2 code, and the entries as read (for the digest)."""
    by_column2: dict[str, list[PtpEdit]] = {}
    entries: list[PtpEntry] = []
    seen: dict[tuple[str, str, date], str] = {}
    for row in file.rows("entries", problems):
        _unknown(file, row, PTP_KEYS, problems)
        first, second = row.get("column_1"), row.get("column_2")
        start, end, modifier = row.get("effective_from"), row.get("deleted_from"), row.get("modifier")
        if not all(isinstance(c, str) and _CODE.fullmatch(c) for c in (first, second)):
            problems.add(file.where(row), "column_1 and column_2 must be quoted codes of 5 letters or digits")
        elif not isinstance(start, date) or (end is not None and not isinstance(end, date)):
            problems.add(
                file.where(row), "effective_from and deleted_from must be dates (YYYY-MM-DD; deleted_from null)"
            )
        elif end is not None and end < start:
            problems.add(file.where(row, "deleted_from"), "deleted_from is before effective_from")
        elif modifier not in _MODIFIERS or isinstance(modifier, bool):
            problems.add(
                file.where(row, "modifier"), f"modifier must be 0, 1 or 9 (PTP modifier indicator): {modifier!r}"
            )
        elif (key := (str(first), str(second), start)) in seen:
            problems.add(file.where(row), f"duplicate of the entry at {seen[key]}")
        else:
            seen[key] = file.where(row)
            edit = PtpEdit(
                str(first),
                str(second),
                start,
                end,
                int(modifier),
                str(row.get("rationale") or ""),
                file.where(row),
                _source(row, source),
            )
            by_column2.setdefault(edit.column2, []).append(edit)
            entries.append(
                (
                    edit.column1,
                    edit.column2,
                    start.isoformat(),
                    end.isoformat() if end is not None else None,
                    edit.modifier,
                    edit.rationale,
                    str(row.get("source") or ""),
                )
            )
    ordered = {
        code: tuple(sorted(edits, key=lambda e: (e.column1, e.effective_from))) for code, edits in by_column2.items()
    }
    return ordered, entries


def _unknown(file: MappingFile, row: Mapping[str, Any], known: frozenset[str], problems: Problems) -> None:
    for key in row:
        if key not in known and key not in (LINE, KEY_LINES):
            problems.add(file.where(row, key), f"unknown key '{key}' (known: {', '.join(sorted(known))})")
