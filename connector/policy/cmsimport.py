"""Reading the CMS MUE and NCCI PTP files as published, and writing them as mappings data.

The files (``docs/cms-policy-files.md``) are text: comma-separated (MUE ``.csv``) or
tab-delimited (PTP ``.txt``), opening with copyright and notice lines before the header row.
The header row is found by its column names (a header split over two or three rows is read
as one), cells may be quoted, and the encoding is UTF-8 or Windows-1252. An Excel workbook is
refused with the advice to save the sheet as CSV: no spreadsheet library is a dependency.

Every problem names ``file:line`` of the CMS file; one problem rejects the file (nothing is
written from a file that is not as documented).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from connector.model import ClaimType
from connector.policy.cms import MAI_NAMES, quarter_label

CODE = re.compile(r"^[0-9A-Z]{5}$")
_MAI = re.compile(r"^\s*([0-9])(?:\D|$)")
_YYYYMMDD = re.compile(r"^\d{8}$")
_HEADER_SPAN = 3  # rows a header may be split over
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"
MAX_PROBLEMS = 20
TABLE_NAMES = {
    ("mue", ClaimType.FACILITY): "CMS MUE table, Outpatient Hospital Services",
    ("mue", ClaimType.PROFESSIONAL): "CMS MUE table, Practitioner Services",
    ("ptp", ClaimType.FACILITY): "CMS NCCI PTP edits, Hospital (outpatient)",
    ("ptp", ClaimType.PROFESSIONAL): "CMS NCCI PTP edits, Practitioner",
}


class CmsFileError(ValueError):
    """A CMS file not in the documented layout: every problem as ``file:line: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class MueRow:
    """One row of an MUE table."""

    code: str
    value: int
    mai: int
    rationale: str
    source: str  # file name:line


@dataclass(frozen=True, slots=True)
class PtpRow:
    """One row of a PTP table."""

    column1: str
    column2: str
    effective_from: date
    deleted_from: date | None
    modifier: int
    rationale: str
    source: str  # file name:line


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    matches: Callable[[str], bool]
    required: bool = True


MUE_COLUMNS = (
    _Column("code", lambda c: "hcpcs" in c or c.startswith("cpt code") or c == "code"),
    _Column("value", lambda c: "mue value" in c),
    _Column("mai", lambda c: "adjudication indicator" in c or c == "mai"),
    _Column("rationale", lambda c: "rationale" in c, required=False),
)
PTP_COLUMNS = (
    _Column("column1", lambda c: re.match(r"^column\s*(1|one)(\W|$)", c) is not None and "column 2" not in c),
    _Column("column2", lambda c: re.match(r"^column\s*(2|two)(\W|$)", c) is not None),
    _Column("prior_1996", lambda c: "1996" in c, required=False),
    _Column("effective", lambda c: "effective" in c),
    _Column("deletion", lambda c: "deletion" in c),
    _Column("modifier", lambda c: "modifier" in c),
    _Column("rationale", lambda c: "rationale" in c, required=False),
)


def read_mue(path: Path, claim_type: ClaimType) -> tuple[list[MueRow], int]:
    """Every row of an MUE file, and the header's line; raises ``CmsFileError``."""
    label = str(path)
    rows = _records(path)
    header, columns = _header(rows, MUE_COLUMNS, label, "HCPCS/CPT Code, … MUE Values, MUE Adjudication Indicator")
    problems: list[str] = []
    value_header = _cell(header[1], columns["value"])
    wrong = _claim_mismatch(value_header, claim_type)
    if wrong:
        problems.append(f"{label}:{header[0]}: {wrong}")
    found: list[MueRow] = []
    seen: dict[str, int] = {}
    for line, cells in _data(rows, header[0]):
        where = f"{label}:{line}"
        code = _cell(cells, columns["code"]).upper()
        value_text = _cell(cells, columns["value"])
        mai_text = _cell(cells, columns["mai"])
        mai = _MAI.match(mai_text)
        if not CODE.match(code):
            problems.append(f"{where}: HCPCS/CPT code {code!r} is not 5 letters or digits")
        elif not value_text.isdigit():
            problems.append(f"{where}: MUE value {value_text!r} for {code} is not a whole number")
        elif mai is None or int(mai.group(1)) not in MAI_NAMES:
            problems.append(
                f"{where}: MUE adjudication indicator {mai_text!r} for {code} is not 1, 2 or 3 "
                "(e.g. '2 Date of Service Edit: Policy')"
            )
        elif code in seen:
            problems.append(f"{where}: {code} again (first at line {seen[code]})")
        else:
            seen[code] = line
            rationale = _cell(cells, columns.get("rationale"))
            found.append(MueRow(code, int(value_text), int(mai.group(1)), rationale, f"{path.name}:{line}"))
        if len(problems) >= MAX_PROBLEMS:
            break
    if not found and not problems:
        problems.append(f"{label}:{header[0]}: no rows after the header")
    if problems:
        raise CmsFileError(problems)
    return found, header[0]


def read_ptp(path: Path) -> list[PtpRow]:
    """Every row of a PTP file; raises ``CmsFileError``."""
    label = str(path)
    rows = _records(path)
    header, columns = _header(rows, PTP_COLUMNS, label, "Column 1, Column 2, Effective Date, Deletion Date, Modifier")
    problems: list[str] = []
    found: list[PtpRow] = []
    seen: dict[tuple[str, str, date], int] = {}
    for line, cells in _data(rows, header[0]):
        where = f"{label}:{line}"
        first, second = _cell(cells, columns["column1"]).upper(), _cell(cells, columns["column2"]).upper()
        effective_text, deletion_text = _cell(cells, columns["effective"]), _cell(cells, columns["deletion"])
        modifier_text = _cell(cells, columns["modifier"])
        effective = _yyyymmdd(effective_text)
        deleted = None if deletion_text in ("", "*") else _yyyymmdd(deletion_text)
        if not CODE.match(first) or not CODE.match(second):
            bad = first if not CODE.match(first) else second
            problems.append(f"{where}: HCPCS/CPT code {bad!r} is not 5 letters or digits")
        elif effective is None:
            problems.append(f"{where}: effective date {effective_text!r} of {first}/{second} is not YYYYMMDD")
        elif deletion_text not in ("", "*") and deleted is None:
            problems.append(f"{where}: deletion date {deletion_text!r} of {first}/{second} is not YYYYMMDD or *")
        elif deleted is not None and deleted < effective:
            problems.append(f"{where}: {first}/{second} is deleted ({deletion_text}) before it is effective")
        elif modifier_text not in ("0", "1", "9"):
            problems.append(f"{where}: modifier indicator {modifier_text!r} of {first}/{second} is not 0, 1 or 9")
        elif (first, second, effective) in seen:
            problems.append(
                f"{where}: {first}/{second} effective {effective_text} again (first at line "
                f"{seen[(first, second, effective)]})"
            )
        else:
            seen[(first, second, effective)] = line
            rationale = _cell(cells, columns.get("rationale"))
            found.append(
                PtpRow(first, second, effective, deleted, int(modifier_text), rationale, f"{path.name}:{line}")
            )
        if len(problems) >= MAX_PROBLEMS:
            break
    if not found and not problems:
        problems.append(f"{label}:{header[0]}: no rows after the header")
    if problems:
        raise CmsFileError(problems)
    return found


def render_mue(
    rows: Iterable[MueRow],
    claim_type: ClaimType,
    effective: date,
    source: Path,
    imported: date,
    kept: str,
) -> str:
    """The mappings file (``cms/mue-<claim>-<quarter>.yaml``) for the rows kept."""
    entries = [
        "  - {"
        + f"code: {_q(r.code)}, value: {r.value}, mai: {r.mai}, rationale: {_q(r.rationale)}, source: {_q(r.source)}"
        + "}"
        for r in rows
    ]
    return _document("mue", claim_type, effective, [source], imported, kept, entries)


def render_ptp(
    rows: Iterable[PtpRow],
    claim_type: ClaimType,
    effective: date,
    sources: list[Path],
    imported: date,
    kept: str,
) -> str:
    """The mappings file (``cms/ptp-<claim>-<quarter>.yaml``) for the rows kept."""
    entries = [
        "  - {"
        + f"column_1: {_q(r.column1)}, column_2: {_q(r.column2)}, effective_from: {r.effective_from.isoformat()}, "
        + f"deleted_from: {r.deleted_from.isoformat() if r.deleted_from else 'null'}, modifier: {r.modifier}, "
        + f"rationale: {_q(r.rationale)}, source: {_q(r.source)}"
        + "}"
        for r in rows
    ]
    return _document("ptp", claim_type, effective, sources, imported, kept, entries)


def output_name(table: str, claim_type: ClaimType, effective: date) -> str:
    """``mue-facility-2026q1.yaml``: the file an import writes under ``cms/``."""
    return f"{table}-{claim_type.value}-{quarter_label(effective)}.yaml"


def _document(
    table: str,
    claim_type: ClaimType,
    effective: date,
    sources: list[Path],
    imported: date,
    kept: str,
    entries: list[str],
) -> str:
    label = quarter_label(effective)
    names = [s.name for s in sources]
    digests = [hashlib.sha256(s.read_bytes()).hexdigest() for s in sources]
    reference = f"{TABLE_NAMES[(table, claim_type)]}, {', '.join(names)} (effective {effective.isoformat()})"
    head = [
        f"# Written by `ivpush policy import-{table}`: re-import the CMS file rather than editing it by hand.",
        "# docs/cms-policy-files.md says where CMS publishes it and what it changes in the output.",
        "meta:",
        f"  name: {table}-{claim_type.value}-{label}",
        f"  table: {table}",
        f"  claim_type: {claim_type.value}",
        f"  quarter: {_q(label)}",
        f"  effective_from: {effective.isoformat()}",
        f"  source_files: [{', '.join(_q(n) for n in names)}]",
        f"  source_sha256: [{', '.join(_q(d) for d in digests)}]",
        f"  imported_by: {_q(f'ivpush policy import-{table}')}",
        f"  reviewed: {imported.isoformat()}",
        f"  reviewed_by: {_q('ivpush policy import-' + table + ' (machine import; check the CMS change report)')}",
        f"  reference: {_q(reference)}",
        f"  kept: {_q(kept)}",
        "entries:" if entries else "entries: []",
    ]
    return "\n".join([*head, *entries]) + "\n"


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _records(path: Path) -> list[tuple[int, list[str]]]:
    """The file's records, each with the line it starts on (quoted cells may span lines)."""
    label = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CmsFileError([f"{label}: cannot read: {error.strerror}"]) from error
    if raw.startswith((_ZIP_MAGIC, _OLE_MAGIC)):
        raise CmsFileError(
            [
                f"{label}:1: an Excel workbook or a zip archive: unzip the CMS download and import its .csv/.txt "
                "file, or save the sheet as CSV (no spreadsheet library is installed)"
            ]
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    lines = text.splitlines()
    sample = [ln for ln in lines[:400] if ln.strip()]
    tabs = sum("\t" in ln for ln in sample)
    delimiter = "\t" if tabs * 2 >= len(sample) and tabs else ","
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(lines, delimiter=delimiter)
    start = 1
    try:
        for cells in reader:
            records.append((start, [c.strip() for c in cells]))
            start = reader.line_num + 1
    except csv.Error as error:
        raise CmsFileError(
            [f"{label}:{start}: not readable as {'tab-delimited text' if delimiter == chr(9) else 'CSV'}: {error}"]
        ) from error
    return records


def _normal(cell: str) -> str:
    return " ".join(cell.lower().replace('"', " ").split())


def _header(
    rows: list[tuple[int, list[str]]], wanted: tuple[_Column, ...], label: str, names: str
) -> tuple[tuple[int, list[str]], dict[str, int]]:
    """The header (its last line, its cells) and each column's index; a header may span rows."""
    head = rows[:1000]
    starts = [
        index
        for index, (_line, cells) in enumerate(head)
        if any(column.matches(_normal(c)) for c in cells for column in wanted if column.required)
    ]
    for span in range(1, _HEADER_SPAN + 1):  # a one-row header anywhere before a split one
        for index in starts:
            columns = _columns(_merge(head[index : index + span]), wanted)
            if columns is None:
                continue
            # Rows right below with no code in the first column continue the header (a data row
            # always has one): "Effective" over "Date", "Modifier" over "0=not allowed …".
            end, first = index + span, columns[wanted[0].name]
            while end < min(len(rows), index + _HEADER_SPAN) and any(rows[end][1]) and not _cell(rows[end][1], first):
                end += 1
            return (rows[end - 1][0], _merge(rows[index:end])), columns
    raise CmsFileError([f"{label}:1: no header row with the CMS column names ({names}) in the first 1000 rows"])


def _merge(group: list[tuple[int, list[str]]]) -> list[str]:
    """Header rows read as one: each column's cells joined with spaces."""
    width = max(len(cells) for _, cells in group)
    return [" ".join(c[i] for _, c in group if i < len(c) and c[i]) for i in range(width)]


def _columns(cells: list[str], wanted: tuple[_Column, ...]) -> dict[str, int] | None:
    found: dict[str, int] = {}
    for column in wanted:
        index = next((i for i, c in enumerate(cells) if column.matches(_normal(c)) and i not in found.values()), None)
        if index is None:
            if column.required:
                return None
            continue
        found[column.name] = index
    return found


def _data(rows: list[tuple[int, list[str]]], header_line: int) -> Iterator[tuple[int, list[str]]]:
    for line, cells in rows:
        if line > header_line and any(cells):
            yield line, cells


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index].strip() if index is not None and index < len(cells) else ""


def _yyyymmdd(text: str) -> date | None:
    if not _YYYYMMDD.match(text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _claim_mismatch(value_header: str, claim_type: ClaimType) -> str | None:
    """Why the MUE file is not for the claim type, from its value column's name (None: it is, or it does not say)."""
    name = _normal(value_header)
    if "dme" in name or "supplier" in name:
        return f"'{value_header}': the DME supplier table is not for drug administration; use the {_kind(claim_type)}"
    if claim_type is ClaimType.FACILITY and "practitioner" in name:
        return f"'{value_header}' is the practitioner table; --claim-type facility needs Outpatient Hospital Services"
    if claim_type is ClaimType.PROFESSIONAL and ("hospital" in name or "facility" in name):
        return (
            f"'{value_header}' is the outpatient hospital table; --claim-type professional needs Practitioner Services"
        )
    return None


def _kind(claim_type: ClaimType) -> str:
    return "Outpatient Hospital Services table" if claim_type is ClaimType.FACILITY else "Practitioner Services table"
