"""``ivpush policy import-mue|import-ptp``: CMS quarterly files into a site's mappings (docs/cms-policy-files.md).

Each command reads a CMS file as published, keeps the rows of the codes this product emits
(the merged chargemaster's codes; ``import-mue --all`` keeps every code), and writes one dated,
sourced mappings file under ``<site mappings>/cms/``, then loads the site's mappings with it to
prove they still load. A file not in the documented layout, or for the other claim type, is
refused with ``file:line`` problems, one per line, and exit 2; nothing is written (not even an
empty ``cms/``). The shipped mappings directory is never written into.
"""

from __future__ import annotations

import contextlib
import os
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NoReturn

import click

from connector.bootstrap import MAPPINGS_ENV
from connector.cli.options import exit_with_error, load_or_exit, mappings_option
from connector.model import ClaimType
from connector.policy.cms import quarter_label, table_version
from connector.policy.cmsimport import (
    CmsFileError,
    PtpRow,
    output_name,
    read_mue,
    read_ptp,
    render_mue,
    render_ptp,
)
from connector.policy.loader import DEFAULT_DIR, load_policy
from connector.policy.yamlfile import MappingError

_MUE_FILE_DATE = re.compile(r"Eff_([0-9]{2})-([0-9]{2})-([0-9]{4})", re.IGNORECASE)

claim_type_option = click.option(
    "--claim-type",
    type=click.Choice([c.value for c in ClaimType]),
    required=True,
    help="facility: the Outpatient Hospital (OPH) table; professional: the Practitioner table.",
)
effective_option = click.option(
    "--effective", required=True, help="First date of service the file applies to (YYYY-MM-DD), e.g. 2026-01-01."
)
out_option = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Site mappings directory to write cms/… into [default: --mappings, else IVPUSH_MAPPINGS].",
)


@click.group()
def policy() -> None:
    """Load CMS quarterly policy files (MUE, NCCI PTP) into a site's mappings."""


@policy.command("import-mue")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@claim_type_option
@effective_option
@mappings_option
@out_option
@click.option("--all", "keep_all", is_flag=True, help="Keep every code of the table, not only the chargemaster's.")
def import_mue(
    file: Path, claim_type: str, effective: str, mappings: Path | None, out: Path | None, keep_all: bool
) -> None:
    """Import a CMS MUE table (Outpatient Hospital or Practitioner Services, .csv as published)."""
    claim, start = ClaimType(claim_type), _date(effective)
    named = _MUE_FILE_DATE.search(file.name)
    if named is not None:
        month, day, year = (int(g) for g in named.groups())
        if (year, month, day) != (start.year, start.month, start.day):
            exit_with_error(
                f"{file}: the file name says effective {year}-{month:02d}-{day:02d}, --effective {effective}"
            )
    target = _target(out, mappings)
    emitted = frozenset(load_or_exit(mappings).chargemaster.items)
    try:
        rows, _header_line = read_mue(file, claim)
    except CmsFileError as error:
        _refuse(error.problems)
    kept = rows if keep_all else [r for r in rows if r.code in emitted]
    if not kept:
        exit_with_error(
            f"{file}: none of the {len(emitted)} chargemaster codes ({', '.join(sorted(emitted)[:3])}, …) is in "
            "the table: is it the MUE table for drug administration (Outpatient Hospital or Practitioner Services)?"
        )
    what = f"all {len(rows)} codes (--all)" if keep_all else f"{len(kept)} of {len(rows)} codes: the chargemaster's"
    text, digest = render_mue(kept, claim, start, file, _today(), what)
    path = _write(target, output_name("mue", claim, start), text)
    missing = sorted(emitted - {r.code for r in rows})
    click.echo(
        f"wrote {path}: {what} ({claim.value}, effective {start.isoformat()}); encounters whose first date of "
        f"service is from then on name {table_version('mue', quarter_label(start), digest)} in their policy version"
    )
    if missing:
        click.echo(f"note: no MUE in the file for {', '.join(missing)}: those lines stay no_mue_on_file")


@policy.command("import-ptp")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@claim_type_option
@effective_option
@mappings_option
@out_option
def import_ptp(
    files: tuple[Path, ...], claim_type: str, effective: str, mappings: Path | None, out: Path | None
) -> None:
    """Import the NCCI PTP edits (Hospital or Practitioner; every .txt of the quarter, tab-delimited as published).

    Keeps the pairs whose column-1 and column-2 codes are both in the chargemaster: the rules
    see only the lines this product emits. Every file must be of the claim type's table
    (practitioner ccipra… for professional, hospital ccioph… for facility).
    """
    claim, start = ClaimType(claim_type), _date(effective)
    target = _target(out, mappings)
    emitted = frozenset(load_or_exit(mappings).chargemaster.items)
    rows: list[PtpRow] = []
    problems: list[str] = []
    seen: dict[tuple[str, str, date], str] = {}
    kinds: dict[ClaimType, list[str]] = {}
    for file in files:
        try:
            found, kind = read_ptp(file, claim)
        except CmsFileError as error:
            problems.extend(error.problems)
            if error.kind is not None:
                kinds.setdefault(error.kind, []).append(file.name)
            continue
        if kind is not None:
            kinds.setdefault(kind, []).append(file.name)
        for row in found:
            key = (row.column1, row.column2, row.effective_from)
            if key in seen:
                problems.append(f"{file.parent / row.source}: {row.column1}/{row.column2} again (first at {seen[key]})")
            seen[key] = row.source
            if row.column1 in emitted and row.column2 in emitted:
                rows.append(row)
    if len(kinds) > 1:
        problems.append(
            f"the files mix practitioner ({', '.join(kinds[ClaimType.PROFESSIONAL])}) and hospital "
            f"({', '.join(kinds[ClaimType.FACILITY])}) PTP edits: import each table on its own, with its --claim-type"
        )
    if problems:
        _refuse(problems)
    total = len(seen)
    what = f"{len(rows)} of {total} pairs: both codes in the chargemaster"
    text, digest = render_ptp(rows, claim, start, list(files), _today(), what)
    path = _write(target, output_name("ptp", claim, start), text)
    click.echo(
        f"wrote {path}: {what} ({claim.value}, effective {start.isoformat()}); encounters whose first date of "
        f"service is from then on name {table_version('ptp', quarter_label(start), digest)} in their policy version"
    )


def _today() -> date:
    """The import date recorded as ``meta.reviewed`` (UTC)."""
    return datetime.now(UTC).date()


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        exit_with_error(f"--effective {text!r} is not a date (YYYY-MM-DD)")


def _target(out: Path | None, mappings: Path | None) -> Path:
    """Where the file goes: ``--out``, else the site mappings directory (never the shipped mappings)."""
    found = out or mappings or (Path(os.environ[MAPPINGS_ENV]) if os.environ.get(MAPPINGS_ENV) else None)
    if found is None:
        exit_with_error(
            "name the site mappings directory to write into (--mappings DIR, --out DIR or IVPUSH_MAPPINGS): "
            "CMS files are a site's data, not the shipped mappings"
        )
    shipped = DEFAULT_DIR.resolve()
    if found.resolve() == shipped or found.resolve().is_relative_to(shipped):
        exit_with_error(
            f"{found} is the shipped mappings directory ({shipped}): CMS files are a site's data; "
            "name the site mappings directory (--mappings DIR, --out DIR or IVPUSH_MAPPINGS)"
        )
    return found


def _refuse(problems: list[str]) -> NoReturn:
    for problem in problems:
        click.echo(f"error: {' '.join(problem.split())}", err=True)
    raise SystemExit(2)


def _write(directory: Path, name: str, text: str) -> Path:
    """Write ``cms/<name>`` and load the directory's mappings with it; on a problem, put back what was there.

    The directories it had to make (``cms/``, and the site directory for a new ``--out``) are
    removed again when the file is not kept.
    """
    folder = directory / "cms"
    path = folder / name
    made = [d for d in (folder, *folder.parents) if not d.exists()]
    before: bytes | None = None
    writing = False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        before = path.read_bytes() if path.exists() else None
        writing = True
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        _undo(path, before if writing else None, made, changed=writing)
        exit_with_error(f"{path}: cannot write: {error.strerror}")
    try:
        load_policy(directory)
    except MappingError as error:
        _undo(path, before, made, changed=True)
        _refuse([f"{problem} (not written)" for problem in error.problems])
    return path


def _undo(path: Path, before: bytes | None, made: list[Path], *, changed: bool) -> None:
    """Put back what ``_write`` changed: the previous file (or none), and no directory it made."""
    with contextlib.suppress(OSError):  # the error being reported says what went wrong
        if changed and before is not None:
            path.write_bytes(before)
        elif changed:
            path.unlink(missing_ok=True)
    for directory in made:  # innermost first; only the ones it made (rmdir removes only an empty one)
        with contextlib.suppress(OSError):
            directory.rmdir()
