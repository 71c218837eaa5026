"""Reading the CMS MUE and NCCI PTP files as published, and writing them as mappings data.

The files (``docs/cms-policy-files.md``) are text: comma-separated (MUE ``.csv``) or
tab-delimited (PTP ``.txt``), opening with copyright and notice lines before the header row.
The header row is found by its column names (column names split over up to three rows are
read as one). The rows right below it whose code columns are empty and whose every cell is
header text (``Date``, ``prior to 1996``, ``*=no data``, ``0=not allowed`` …) continue it, however
many there are; a row with a number, a date or ``*`` in a cell is data, and a data row without a
code is refused. Cells may be quoted (strictly: a quote must close where its cell ends), every
data row has the header's cells on one line, and the encoding is UTF-8 or Windows-1252. An
Excel workbook is refused with the advice to save the sheet as CSV: no spreadsheet library is
a dependency.

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
from typing import TypeVar

from connector.model import ClaimType
from connector.policy.cms import MAI_NAMES, MueEntry, PtpEntry, quarter_label, table_digest

CODE = re.compile(r"[0-9A-Z]{5}")  # every pattern here is used with fullmatch: ASCII digits only
_NUMBER = re.compile(r"[0-9]+")
_MAI = re.compile(r"\s*([0-9])(?:[^0-9].*)?", re.DOTALL)  # "3 Date of Service Edit: Clinical"
_YYYYMMDD = re.compile(r"[0-9]{8}")
_HEADER_SPAN = 3  # rows the column names themselves may be split over
_CONTINUATION_ROWS = 12  # most header rows below the column names ("Date", "0=not allowed", …)
# Words of the CMS column names and their legends: a row of nothing else below the header, with
# no code, continues the header ("prior to 1996", "Date", "*=no data", "9=not applicable").
_HEADER_WORDS = frozenset(
    re.findall(
        r"[a-z]+",
        "adjudication allowed and applicable code codes column cpt data date dates deletion edit edits effective "
        "existence hcpcs hospital in indicator modifier mue no not of or outpatient practitioner prior ptp "
        "rationale services to value values",
    )
)
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
    """A CMS file not in the documented layout: every problem as ``file:line: message``.

    ``kind`` is the claim type a refused PTP file says it is for, when it says (None otherwise).
    """

    def __init__(self, problems: list[str], kind: ClaimType | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.kind = kind


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


_Row = TypeVar("_Row", MueRow, PtpRow)


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


@dataclass(frozen=True, slots=True)
class _Record:
    """One record of the file: the lines it starts and ends on (a quoted cell may span lines), its cells."""

    line: int
    end: int
    cells: list[str]


@dataclass(frozen=True, slots=True)
class _Header:
    """The header: its first and last lines, its cells (rows read as one), each column's index."""

    index: int  # of its first record
    first: int
    line: int
    cells: list[str]
    columns: dict[str, int]


def read_mue(path: Path, claim_type: ClaimType) -> tuple[list[MueRow], int]:
    """Every row of an MUE file, and the header's line; raises ``CmsFileError``."""
    label = str(path)
    rows = _records(path)
    header = _header(rows, MUE_COLUMNS, ("code",), label, "HCPCS/CPT Code, … MUE Values, MUE Adjudication Indicator")
    columns = header.columns
    problems: list[str] = []
    value_header = _cell(header.cells, columns["value"])
    wrong = _claim_mismatch(value_header, claim_type)
    if wrong:
        problems.append(f"{label}:{header.line}: {wrong}")
    seen: dict[str, int] = {}

    def row(line: int, cells: list[str]) -> MueRow | str:
        code = _cell(cells, columns["code"]).upper()
        value_text = _cell(cells, columns["value"])
        mai_text = _cell(cells, columns["mai"])
        mai = _MAI.fullmatch(mai_text)
        if not CODE.fullmatch(code):
            return f"HCPCS/CPT code {code!r} is not 5 letters or digits"
        if not _NUMBER.fullmatch(value_text):
            return f"MUE value {value_text!r} for {code} is not a whole number"
        if mai is None or int(mai.group(1)) not in MAI_NAMES:
            return (
                f"MUE adjudication indicator {mai_text!r} for {code} is not 1, 2 or 3 "
                "(e.g. '2 Date of Service Edit: Policy')"
            )
        if code in seen:
            return f"{code} again (first at line {seen[code]})"
        seen[code] = line
        rationale = _cell(cells, columns.get("rationale"))
        return MueRow(code, int(value_text), int(mai.group(1)), rationale, f"{path.name}:{line}")

    return _rows(rows, header, label, problems, row), header.line


def read_ptp(path: Path, claim_type: ClaimType) -> tuple[list[PtpRow], ClaimType | None]:
    """Every row of a PTP file, and the claim type the file says it is for (None: it does not say).

    Raises ``CmsFileError``, also when the file is the other table than ``claim_type``'s
    (practitioner ``ccipra…`` for facility, hospital ``ccioph…`` for professional).
    """
    label = str(path)
    rows = _records(path)
    header = _header(
        rows, PTP_COLUMNS, ("column1", "column2"), label, "Column 1, Column 2, Effective Date, Deletion Date, Modifier"
    )
    columns = header.columns
    problems: list[str] = []
    kind, evidence = _ptp_kind(path, [*rows[: header.index], _Record(header.first, header.line, header.cells)])
    if kind is not None and kind is not claim_type:
        problems.append(f"{label}:{evidence[0]}: {_ptp_mismatch(evidence[1], kind, claim_type)}")
    seen: dict[tuple[str, str, date], int] = {}

    def row(line: int, cells: list[str]) -> PtpRow | str:
        first, second = _cell(cells, columns["column1"]).upper(), _cell(cells, columns["column2"]).upper()
        effective_text, deletion_text = _cell(cells, columns["effective"]), _cell(cells, columns["deletion"])
        modifier_text = _cell(cells, columns["modifier"])
        effective = _yyyymmdd(effective_text)
        deleted = None if deletion_text in ("", "*") else _yyyymmdd(deletion_text)
        if not CODE.fullmatch(first) or not CODE.fullmatch(second):
            bad = first if not CODE.fullmatch(first) else second
            return f"HCPCS/CPT code {bad!r} is not 5 letters or digits"
        if effective is None:
            return f"effective date {effective_text!r} of {first}/{second} is not YYYYMMDD"
        if deletion_text not in ("", "*") and deleted is None:
            return f"deletion date {deletion_text!r} of {first}/{second} is not YYYYMMDD or *"
        if deleted is not None and deleted < effective:
            return f"{first}/{second} is deleted ({deletion_text}) before it is effective"
        if modifier_text not in ("0", "1", "9"):
            return f"modifier indicator {modifier_text!r} of {first}/{second} is not 0, 1 or 9"
        if (first, second, effective) in seen:
            return (
                f"{first}/{second} effective {effective_text} again (first at line {seen[(first, second, effective)]})"
            )
        seen[(first, second, effective)] = line
        rationale = _cell(cells, columns.get("rationale"))
        return PtpRow(first, second, effective, deleted, int(modifier_text), rationale, f"{path.name}:{line}")

    return _rows(rows, header, label, problems, row, kind), kind


def _rows(
    rows: list[_Record],
    header: _Header,
    label: str,
    problems: list[str],
    row: Callable[[int, list[str]], _Row | str],
    kind: ClaimType | None = None,
) -> list[_Row]:
    """Every data row read by ``row`` (the row, or what is wrong with it); raises ``CmsFileError``.

    ``problems`` holds those found before the rows (the header's); the first ``MAX_PROBLEMS``
    are raised, with ``kind``, and also when there is no row at all.
    """
    found: list[_Row] = []
    for line, cells, shape in _data(rows, header):
        read = shape or row(line, cells)
        if isinstance(read, str):
            problems.append(f"{label}:{line}: {read}")
        else:
            found.append(read)
        if len(problems) >= MAX_PROBLEMS:
            break
    if not found and not problems:
        problems.append(f"{label}:{header.line}: no rows after the header")
    if problems:
        raise CmsFileError(problems, kind)
    return found


def render_mue(
    rows: Iterable[MueRow],
    claim_type: ClaimType,
    effective: date,
    source: Path,
    imported: date,
    kept: str,
) -> tuple[str, str]:
    """The mappings file (``cms/mue-<claim>-<quarter>.yaml``) for the rows kept, and the table's digest."""
    rows = list(rows)
    entries = [
        "  - {"
        + f"code: {_q(r.code)}, value: {r.value}, mai: {r.mai}, rationale: {_q(r.rationale)}, source: {_q(r.source)}"
        + "}"
        for r in rows
    ]
    content: list[MueEntry] = [(r.code, r.value, r.mai, r.rationale, r.source) for r in rows]
    return _document("mue", claim_type, effective, [source], imported, kept, entries, content)


def render_ptp(
    rows: Iterable[PtpRow],
    claim_type: ClaimType,
    effective: date,
    sources: list[Path],
    imported: date,
    kept: str,
) -> tuple[str, str]:
    """The mappings file (``cms/ptp-<claim>-<quarter>.yaml``) for the rows kept, and the table's digest."""
    rows = list(rows)
    entries = [
        "  - {"
        + f"column_1: {_q(r.column1)}, column_2: {_q(r.column2)}, effective_from: {r.effective_from.isoformat()}, "
        + f"deleted_from: {r.deleted_from.isoformat() if r.deleted_from else 'null'}, modifier: {r.modifier}, "
        + f"rationale: {_q(r.rationale)}, source: {_q(r.source)}"
        + "}"
        for r in rows
    ]
    content: list[PtpEntry] = [
        (
            r.column1,
            r.column2,
            r.effective_from.isoformat(),
            r.deleted_from.isoformat() if r.deleted_from else None,
            r.modifier,
            r.rationale,
            r.source,
        )
        for r in rows
    ]
    return _document("ptp", claim_type, effective, sources, imported, kept, entries, content)


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
    content: list[MueEntry] | list[PtpEntry],
) -> tuple[str, str]:
    label = quarter_label(effective)
    names = [s.name for s in sources]
    digests = [hashlib.sha256(s.read_bytes()).hexdigest() for s in sources]
    digest = table_digest(table, claim_type, effective, digests, content)
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
        f"  digest: {_q(digest)}  # of the CMS files and the entries: in the policy version, {table}-{label}.{digest}",
        f"  imported_by: {_q(f'ivpush policy import-{table}')}",
        f"  reviewed: {imported.isoformat()}",
        f"  reviewed_by: {_q('ivpush policy import-' + table + ' (machine import; check the CMS change report)')}",
        f"  reference: {_q(reference)}",
        f"  kept: {_q(kept)}",
        "entries:" if entries else "entries: []",
    ]
    return "\n".join([*head, *entries]) + "\n", digest


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML; what YAML may not hold raw is escaped)."""
    return _NOT_YAML.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False))


# YAML 1.1's non-printable characters, and its line breaks (NEL, LS, PS) that a quoted scalar folds
_NOT_YAML = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def _records(path: Path) -> list[_Record]:
    """The file's records, each with the lines it starts and ends on (quoted cells may span lines).

    The reader is strict: a quote that opens a cell must close where the cell ends (``"a"b`` or a
    quote left open are errors, not cells read on into the next rows).
    """
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
    records: list[_Record] = []
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    start = 1
    try:
        for cells in reader:
            records.append(_Record(start, reader.line_num, [c.strip() for c in cells]))
            start = reader.line_num + 1
    except csv.Error as error:
        where = f"{label}:{start}: not readable as {'tab-delimited text' if delimiter == chr(9) else 'CSV'}"
        if "expected after" in str(error):
            what = f"a quoted cell from here closes on line {reader.line_num} with more text after the quote"
        elif "end of data" in str(error):
            what = "a quote from here is not closed by the end of the file"
        else:
            what = str(error)
        raise CmsFileError([f"{where}: {what}; is a quote misplaced?"]) from error
    return records


def _normal(cell: str) -> str:
    return " ".join(cell.lower().replace('"', " ").split())


def _header(
    rows: list[_Record], wanted: tuple[_Column, ...], code_columns: tuple[str, ...], label: str, names: str
) -> _Header:
    """The header (its lines, its cells, each column's index), and the rows below it that continue it.

    The column names are found on one row, else on two or three rows read as one (a one-row
    header anywhere is preferred). Then every row right below whose code columns are empty and
    whose cells are all header text continues it (``_continues``), however many there are
    (``_CONTINUATION_ROWS`` at most): CMS PTP files put "prior to 1996 / Date / Date /
    0=not allowed", "*=no data / 1=allowed" and "9=not applicable" on three rows of their own.
    """
    head = rows[:1000]
    starts = [
        index
        for index, row in enumerate(head)
        if any(column.matches(_normal(c)) for c in row.cells for column in wanted if column.required)
    ]
    for span in range(1, _HEADER_SPAN + 1):  # a one-row header anywhere before a split one
        for index in starts:
            group = head[index : index + span]
            if len(group) < span or not all(_header_row(row.cells) for row in group[1:]):
                continue
            columns = _columns(_merge(group), wanted)
            if columns is None:
                continue
            codes = [columns[name] for name in code_columns]
            end = probe = index + span
            taken = 0
            while probe < len(rows) and taken < _CONTINUATION_ROWS:
                if any(rows[probe].cells):
                    if not _continues(rows[probe].cells, codes):
                        break
                    taken += 1
                    end = probe + 1
                probe += 1  # a blank row between header rows does not end the header
            return _Header(index, rows[index].line, rows[end - 1].end, _merge(rows[index:end]), columns)
    raise CmsFileError([f"{label}:1: no header row with the CMS column names ({names}) in the first 1000 rows"])


def _continues(cells: list[str], codes: list[int]) -> bool:
    """Whether a row below the header continues it: no code, and nothing but header text."""
    return not any(_cell(cells, i) for i in codes) and _header_row(cells)


def _header_row(cells: list[str]) -> bool:
    """A row of header text only: some cell filled, and every filled cell ``_header_text``."""
    filled = [c for c in cells if c]
    return bool(filled) and all(_header_text(c) for c in filled)


def _header_text(cell: str) -> bool:
    """A legend (``0=not allowed``, ``*=no data``) or words of the column names (``prior to 1996``, ``Date``).

    A number, a date, ``*`` or a rationale ("Mutually exclusive procedures") is not: a row
    holding one is data.
    """
    words = re.findall(r"[a-z]+", cell.lower())
    if not words:
        return False
    if re.fullmatch(r"[0-9*]\s*=.*", cell, re.DOTALL):
        return True
    return all(word in _HEADER_WORDS for word in words)


def _merge(group: list[_Record]) -> list[str]:
    """Header rows read as one: each column's cells joined with spaces."""
    width = max(len(row.cells) for row in group)
    return [" ".join(r.cells[i] for r in group if i < len(r.cells) and r.cells[i]) for i in range(width)]


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


def _data(rows: list[_Record], header: _Header) -> Iterator[tuple[int, list[str], str]]:
    """Each data row (line, cells) after the header, with what is wrong with its shape ('' when nothing).

    A data row is on one line and has the header's cells: more (filled) cells, fewer cells than
    the header names, or a cell running over several lines mean a quote or a delimiter out of
    place, and the row is refused rather than read shifted or merged with the next.
    """
    named = max((i + 1 for i, c in enumerate(header.cells) if c), default=0)
    width = len(header.cells)
    for row in rows:
        if row.line <= header.line or not any(row.cells):
            continue
        cells = row.cells
        shape = ""
        if row.end > row.line:
            shape = (
                f"a quoted cell runs from line {row.line} to line {row.end}: a data row is one line "
                "(is a quote misplaced?)"
            )
        elif len(cells) < named or any(cells[width:]):
            shape = f"{len(cells)} cells where the header has {named}: is a quote or a delimiter out of place?"
        yield row.line, cells, shape


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


def _ptp_kind(path: Path, notice: list[_Record]) -> tuple[ClaimType | None, tuple[int, str]]:
    """The claim type a PTP file is for, from its name, else its notice and header; and where that is said.

    CMS names the practitioner files ``ccipra-…`` and the outpatient hospital ones ``ccioph-…``;
    a name or a notice line naming "Practitioner" or "Hospital" says the same.
    """
    name = path.name.lower()
    for kind, prefix, word in _PTP_KINDS:
        if name.startswith(prefix) or word in name:
            return kind, (1, f"the file name {path.name!r}")
    for row in notice:
        text = " ".join(row.cells).lower()
        said = [kind for kind, _prefix, word in _PTP_KINDS if re.search(rf"\b{word}\b", text)]
        if len(said) == 1:
            return said[0], (row.line, f"line {row.line} ({' '.join(' '.join(row.cells).split())[:60]!r})")
    return None, (1, "")


_PTP_KINDS = (
    (ClaimType.PROFESSIONAL, "ccipra", "practitioner"),
    (ClaimType.FACILITY, "ccioph", "hospital"),
)


def _ptp_mismatch(evidence: str, kind: ClaimType, claim_type: ClaimType) -> str:
    """Why a PTP file is not for ``--claim-type``."""
    names = {
        ClaimType.PROFESSIONAL: "Practitioner PTP edits (ccipra…)",
        ClaimType.FACILITY: "Hospital PTP edits (ccioph…)",
    }
    return f"{evidence} says the {names[kind]}; --claim-type {claim_type.value} needs the {names[claim_type]}"


def _kind(claim_type: ClaimType) -> str:
    return "Outpatient Hospital Services table" if claim_type is ClaimType.FACILITY else "Practitioner Services table"
