"""CMS quarterly files (issue #16): MUE and NCCI PTP imports, their rules, and dated policy versions.

The tests write small files in the layouts CMS publishes (docs/cms-policy-files.md): copyright
and notice lines, then the header row, quoted CSV for the MUE tables, tab-delimited text for
the PTP edits.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import connector.cli.policy as command
from connector.cli.main import cli
from connector.model import (
    Administration,
    ChargeLine,
    ChargeResult,
    ClaimType,
    CodedValue,
    Coding,
    Encounter,
    OutcomeKind,
    PatientClass,
    Review,
    SourceRef,
)
from connector.policy.cms import PtpEdit, PtpTable, quarter_label
from connector.policy.loader import DEFAULT_DIR, load_policy
from connector.policy.model import Policy
from connector.policy.yamlfile import MappingError
from connector.rules import evaluate
from connector.rules.edits import Draft, apply_ptp
from connector.rules.outcomes import outcomes

ZONE = timezone(timedelta(hours=-6))
KEY = "FAC|V1"
IV = CodedValue((Coding("HL70162", "IV"),))
PUSH = CodedValue((Coding("HL70165", "IVP"),))
ONDANSETRON = "Ondansetron 4 mg/2 mL injection"
MORPHINE = "Morphine 4 mg/mL inj"
VANCOMYCIN = "Vancomycin 1 g in NS 250 mL"
MUE_NAME = "MCR_MUE_OutpatientHospitalServices_Eff_01-01-2026.csv"
MUE_HEADER = '"HCPCS/CPT Code","Outpatient Hospital Services MUE Values","MUE Adjudication Indicator","MUE Rationale"'
MAI_TEXT = {1: "1 Line Edit", 2: "2 Date of Service Edit: Policy", 3: "3 Date of Service Edit: Clinical"}
NOTICE = (
    '"CPT codes, descriptions and other data only are copyright 2025 American Medical Association. '
    'All Rights Reserved."',
    '"Applicable FARS/DFARS Restrictions Apply to Government Use."',
    '"Fee schedules, relative value units, conversion factors and/or related components are not assigned by the AMA"',
    "",
)
PTP_NAME = "ccioph-v321r0-f4.txt"
PTP_HEADER = (
    "Column 1\tColumn 2\t*=in existence prior to 1996\tEffective Date\tDeletion Date *=no data\t"
    "Modifier 0=not allowed 1=allowed 9=not applicable\tPTP Edit Rationale"
)


# --- files in the CMS layouts, and the command -------------------------------------------------


def mue_csv(
    folder: Path, rows: list[tuple[str, object, object]], name: str = MUE_NAME, header: str = MUE_HEADER
) -> Path:
    """An MUE table as CMS publishes it: notice lines, the header, quoted rows (code, value, MAI)."""
    body = [*NOTICE, header]
    for code, value, mai in rows:
        body.append(f'"{code}","{value}","{MAI_TEXT.get(mai, mai)}","Clinical: Data"')
    path = folder / name
    path.write_text("\r\n".join(body) + "\r\n", encoding="cp1252")
    return path


def ptp_txt(folder: Path, rows: list[tuple[str, str, str, str, object]], name: str = PTP_NAME) -> Path:
    """A PTP table as CMS publishes it: notice lines, a title, the header, tab-delimited rows."""
    body = [
        "CPT only copyright 2025 American Medical Association. All rights reserved.",
        "",
        "Column 1/Column 2 Edits",
        PTP_HEADER,
    ]
    body += [
        f"{c1}\t{c2}\t\t{eff}\t{deleted}\t{mod}\tMisuse of column two code with column one code"
        for c1, c2, eff, deleted, mod in rows
    ]
    path = folder / name
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path


def versioned(expected: str) -> re.Pattern[str]:
    """``expected`` with each CMS table's content digest after its quarter (``mue-2026q1.3fa2b1c0``)."""
    parts = [re.escape(p) + (r"\.[0-9a-f]{8}" if p.startswith(("mue-", "ptp-")) else "") for p in expected.split("/")]
    return re.compile("/".join(parts))


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, ["policy", *map(str, args)])


def import_mue(site: Path, file: Path, effective: str = "2026-01-01", claim: str = "facility") -> Result:
    return run("import-mue", file, "--claim-type", claim, "--effective", effective, "--mappings", site)


def import_ptp(site: Path, file: Path, effective: str = "2026-01-01", claim: str = "facility") -> Result:
    return run("import-ptp", file, "--claim-type", claim, "--effective", effective, "--mappings", site)


def site_dir(tmp_path: Path, **settings: object) -> Path:
    """An empty site mappings directory, with default-payer settings when given."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    if settings:
        (site / "payers").mkdir(exist_ok=True)
        lines = "".join(f"  {k}: {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in settings.items())
        (site / "payers" / "default.yaml").write_text(
            "meta: {name: default, reviewed: 2026-11-26, reference: test, effective_from: 2009-01-01}\n"
            f"settings:\n{lines}",
            encoding="utf-8",
        )
    return site


def with_mue(tmp_path: Path, rows: list[tuple[str, object, object]], **settings: object) -> Policy:
    site = site_dir(tmp_path, **settings)
    result = import_mue(site, mue_csv(tmp_path, rows))
    assert result.exit_code == 0, result.output
    return load_policy(site)


def with_ptp(tmp_path: Path, rows: list[tuple[str, str, str, str, object]], **settings: object) -> Policy:
    site = site_dir(tmp_path, **settings)
    result = import_ptp(site, ptp_txt(tmp_path, rows))
    assert result.exit_code == 0, result.output
    return load_policy(site)


# --- encounters ---------------------------------------------------------------------------------


def admin(n: int, minute: int, drug: str = ONDANSETRON, **changes: object) -> Administration:
    made = Administration(
        id=f"a{n}",
        encounter_key=KEY,
        drug=CodedValue(text=drug),
        start=datetime(2026, 3, 2, 8, 0, tzinfo=ZONE) + timedelta(minutes=minute),
        route=IV,
        method=PUSH,
        version="1",
        source=SourceRef("hl7v2", f"MSG{n}", "0"),
    )
    return replace(made, **changes) if changes else made


def infusion(n: int, minute: int, minutes: int, **changes: object) -> Administration:
    start = datetime(2026, 3, 2, 8, 0, tzinfo=ZONE) + timedelta(minutes=minute)
    return admin(n, minute, VANCOMYCIN, method=CodedValue(), end=start + timedelta(minutes=minutes), **changes)


def encounter(*admins: Administration, **changes: object) -> Encounter:
    ordered = tuple(sorted(admins, key=lambda a: (a.start, a.id)))
    return replace(Encounter(KEY, patient_class=PatientClass.EMERGENCY, administrations=ordered), **changes)


def three_pushes(**changes: object) -> Encounter:
    """Ondansetron pushed three times 40 minutes apart: 96374, then 96376 × 2."""
    return encounter(admin(1, 0), admin(2, 40), admin(3, 80), **changes)


def line(result: ChargeResult, code: str, modifiers: tuple[str, ...] = ()) -> ChargeLine:
    found = [ln for ln in result.lines if ln.code == code and ln.modifiers == modifiers]
    assert len(found) == 1, [(ln.code, ln.modifiers, ln.units) for ln in result.lines]
    return found[0]


# --- the MUE import -----------------------------------------------------------------------------


def test_the_mue_import_finds_the_header_below_the_notice_and_keeps_the_chargemaster_codes(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    result = import_mue(site, mue_csv(tmp_path, [("96374", 1, 2), ("96376", 2, 3), ("99213", 1, 3)]))
    assert result.exit_code == 0, result.output
    written = site / "cms" / "mue-facility-2026q1.yaml"
    assert f"wrote {written}: 2 of 3 codes" in result.stdout
    text = written.read_text(encoding="utf-8")
    assert f'source_files: ["{MUE_NAME}"]' in text and "effective_from: 2026-01-01" in text
    assert 'quarter: "2026q1"' in text and "imported_by:" in text and "99213" not in text
    assert f'{{code: "96376", value: 2, mai: 3, rationale: "Clinical: Data", source: "{MUE_NAME}:7"}}' in text
    table = load_policy(site).cms.mue_for(ClaimType.FACILITY, date(2026, 3, 2))
    assert table is not None and set(table.edits) == {"96374", "96376"}
    assert (table.edits["96374"].value, table.edits["96374"].mai) == (1, 2)


def test_the_mue_import_keeps_every_code_with_all(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    file = mue_csv(tmp_path, [("96374", 1, 2), ("99213", 1, 3), ("J1100", 40, 3)])
    result = run("import-mue", file, "--claim-type", "facility", "--effective", "2026-01-01", "--out", site, "--all")
    assert result.exit_code == 0, result.output
    table = load_policy(site).cms.mue_for(ClaimType.FACILITY, date(2026, 3, 2))
    assert table is not None and set(table.edits) == {"96374", "99213", "J1100"}


@pytest.mark.parametrize(
    ("rows", "line_no", "message"),
    [
        ([("96374", "two", 2)], 6, "MUE value 'two' for 96374 is not a whole number"),
        ([("96374", 1, 2), ("96375", 1, "4 Something")], 7, "MUE adjudication indicator '4 Something'"),
        ([("9637", 1, 2)], 6, "HCPCS/CPT code '9637' is not 5 letters or digits"),
        ([("96374", 1, 2), ("96374", 2, 2)], 7, "96374 again (first at line 6)"),
    ],
)
def test_a_malformed_mue_file_is_refused_with_file_and_line(
    tmp_path: Path, rows: list[tuple[str, object, object]], line_no: int, message: str
) -> None:
    site = site_dir(tmp_path)
    file = mue_csv(tmp_path, rows)
    result = import_mue(site, file)
    assert result.exit_code == 2
    assert result.stderr == f"error: {file}:{line_no}: {message}" + result.stderr.split(message, 1)[1]
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert not (site / "cms").exists()


def test_an_mue_file_without_the_cms_header_is_refused(tmp_path: Path) -> None:
    file = tmp_path / MUE_NAME
    file.write_text("code,units\n96374,1\n", encoding="utf-8")
    result = import_mue(site_dir(tmp_path), file)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {file}:1: no header row with the CMS column names")


def test_the_practitioner_table_is_refused_for_facility_claims(tmp_path: Path) -> None:
    header = MUE_HEADER.replace("Outpatient Hospital Services", "Practitioner Services")
    file = mue_csv(tmp_path, [("96374", 1, 2)], name="MCR_MUE_PractitionerServices_Eff_01-01-2026.csv", header=header)
    result = import_mue(site_dir(tmp_path), file)
    assert result.exit_code == 2
    assert f"error: {file}:5: 'Practitioner Services MUE Values' is the practitioner table" in result.stderr
    assert import_mue(site_dir(tmp_path), file, claim="professional").exit_code == 0


def test_an_excel_workbook_is_refused_with_the_advice_to_save_it_as_csv(tmp_path: Path) -> None:
    file = tmp_path / "MCR_MUE_OutpatientHospitalServices_Eff_01-01-2026.xlsx"
    file.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    result = import_mue(site_dir(tmp_path), file)
    assert result.exit_code == 2 and "save the sheet as CSV" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_the_effective_date_must_match_the_file_name_and_the_site_directory_is_required(tmp_path: Path) -> None:
    file = mue_csv(tmp_path, [("96374", 1, 2)])
    wrong = import_mue(site_dir(tmp_path), file, effective="2026-04-01")
    assert wrong.exit_code == 2 and "the file name says effective 2026-01-01" in wrong.stderr
    nowhere = CliRunner().invoke(
        cli, ["policy", "import-mue", str(file), "--claim-type", "facility", "--effective", "2026-01-01"], env={}
    )
    assert nowhere.exit_code == 2 and "name the site mappings directory" in nowhere.stderr
    missing = import_mue(site_dir(tmp_path), tmp_path / "MCR_MUE_x_Eff_01-01-2026.csv")
    assert missing.exit_code == 2 and "cannot read" in missing.stderr and "Traceback" not in missing.output


# --- MUE rules ----------------------------------------------------------------------------------


def test_no_cms_file_loaded_leaves_the_lines_and_the_version_as_before(policy: Policy, tmp_path: Path) -> None:
    result = evaluate(three_pushes(), policy)
    assert result.policy_version == "cpt-2026.1/facility"
    assert [(ln.code, ln.units, ln.flags) for ln in result.lines] == [
        ("96374", 1, ("no_mue_on_file",)),
        ("96376", 2, ("no_mue_on_file",)),
    ]
    # an empty site directory codes the same lines, with the same ids
    assert evaluate(three_pushes(), load_policy(site_dir(tmp_path))).lines == result.lines


def test_mai_1_caps_the_line_and_explains_the_units_over(tmp_path: Path) -> None:
    result = evaluate(three_pushes(), with_mue(tmp_path, [("96374", 1, 1), ("96376", 1, 1)]))
    repeat = line(result, "96376")
    assert repeat.units == 1 and repeat.flags == ("mue_capped",)
    assert repeat.reason.endswith(f"1 unit over the MUE of 1 (MAI 1, line edit; CMS file {MUE_NAME}): not billed.")
    assert line(result, "96374").flags == ()
    assert versioned("cpt-2026.1/facility/mue-2026q1").fullmatch(result.policy_version)


def test_mai_2_caps_and_says_appeals_do_not_pay_more(tmp_path: Path) -> None:
    result = evaluate(three_pushes(), with_mue(tmp_path, [("96376", 1, 2)]))
    repeat = line(result, "96376")
    assert repeat.units == 1 and repeat.flags == ("mue_capped",)
    assert "(MAI 2, date-of-service edit: policy; CMS file" in repeat.reason
    assert repeat.reason.endswith("Not payable on appeal (MAI 2: CMS policy).")
    # 96374 is not in the loaded table: only that line says so
    assert line(result, "96374").flags == ("no_mue_on_file",)


def test_mai_3_caps_and_asks_for_review(tmp_path: Path) -> None:
    policy = with_mue(tmp_path, [("96376", 1, 3)])
    coded = three_pushes()
    result = evaluate(coded, policy)
    repeat = line(result, "96376")
    assert repeat.units == 1 and repeat.flags == ("mue_capped", "needs_review")
    assert "Needs review: clinical documentation may support more than 1" in repeat.reason
    found = {o.administration_id: o for o in outcomes(coded, result, policy)}
    assert (found["a3"].outcome, found["a3"].reason) == (OutcomeKind.NEEDS_REVIEW, "mue_clinical")
    assert "Needs review: 96376 on 2026-03-02: clinical documentation may support more" in found["a3"].detail


def test_under_the_value_nothing_is_capped(tmp_path: Path) -> None:
    result = evaluate(three_pushes(), with_mue(tmp_path, [("96374", 1, 2), ("96376", 2, 3)]))
    assert [(ln.code, ln.units, ln.flags) for ln in result.lines] == [("96374", 1, ()), ("96376", 2, ())]


def second_site_pushes() -> Encounter:
    """Ondansetron at one site, morphine at another: 96374 and 96374-59 (second site allowed)."""
    return encounter(admin(1, 0, site="L-ANTECUBITAL"), admin(2, 30, MORPHINE, site="R-HAND"))


@pytest.mark.parametrize("mai", [2, 3])
def test_date_of_service_mais_add_the_units_of_every_line_of_the_code_that_day(tmp_path: Path, mai: int) -> None:
    policy = with_mue(tmp_path, [("96374", 1, mai)], allow_second_site_initial=True)
    coded = second_site_pushes()
    result = evaluate(coded, policy)
    kept = line(result, "96374")
    assert kept.units == 1 and kept.administration_ids == ("a1",)
    assert [ln.modifiers for ln in result.lines] == [()]  # the 59 line is not billed …
    found = {o.administration_id: o for o in outcomes(coded, result, policy)}
    assert (found["a2"].outcome, found["a2"].reason) == (OutcomeKind.NO_LINE, "mue_exceeded")  # … and says so
    assert (
        "96374-59 on 2026-03-02: 2 units of 96374 on 2026-03-02 over all its lines, "
        f"1 unit over the MUE of 1 (MAI {mai}" in found["a2"].detail
    )


def test_mai_1_caps_each_line_on_its_own(tmp_path: Path) -> None:
    policy = with_mue(tmp_path, [("96374", 1, 1)], allow_second_site_initial=True)
    result = evaluate(second_site_pushes(), policy)
    assert [(ln.code, ln.modifiers, ln.units, ln.flags) for ln in result.lines] == [
        ("96374", (), 1, ()),
        ("96374", ("59",), 1, ()),
    ]


def test_an_mue_of_zero_withholds_the_line_and_explains_it_on_the_administrations(tmp_path: Path) -> None:
    policy = with_mue(tmp_path, [("96374", 1, 2), ("96376", 0, 2)])
    coded = three_pushes()
    result = evaluate(coded, policy)
    assert [ln.code for ln in result.lines] == ["96374"]
    decisions = {d.administration_id: d for d in result.decisions}
    assert decisions["a2"].reason_code.value == "mue_exceeded"
    assert "96376 on 2026-03-02: 2 units over the MUE of 0" in decisions["a2"].reason
    assert {o.reason for o in outcomes(coded, result, policy) if o.administration_id != "a1"} == {"mue_exceeded"}


def test_a_payer_files_mue_entry_overrides_the_cms_table(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    assert import_mue(site, mue_csv(tmp_path, [("96376", 1, 1)])).exit_code == 0
    (site / "payers").mkdir()
    (site / "payers" / "default.yaml").write_text(
        "meta: {name: default, reviewed: 2026-11-26, reference: test, effective_from: 2009-01-01}\n"
        "settings:\n  mue:\n    - {code: '96376', facility_units: 3, mai: 2, reference: 'CMS MUE file, payer copy'}\n",
        encoding="utf-8",
    )
    result = evaluate(three_pushes(), load_policy(site))
    assert line(result, "96376").units == 2 and line(result, "96376").flags == ()


def test_an_mue_table_applies_only_to_its_claim_type(tmp_path: Path) -> None:
    policy = with_mue(tmp_path, [("96374", 1, 2), ("96376", 1, 1)])
    result = evaluate(three_pushes(claim_type=ClaimType.PROFESSIONAL), policy)
    assert result.policy_version == "cpt-2026.1/professional"
    assert result.lines and all("no_mue_on_file" in ln.flags for ln in result.lines)


# --- two quarters side by side -----------------------------------------------------------------


def test_two_quarters_side_by_side_each_encounter_coded_by_its_first_date_of_service(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    q1 = mue_csv(tmp_path, [("96376", 1, 2)])
    q2 = mue_csv(tmp_path, [("96376", 2, 2)], name="MCR_MUE_OutpatientHospitalServices_Eff_04-01-2026.csv")
    assert import_mue(site, q1).exit_code == 0
    assert import_mue(site, q2, effective="2026-04-01").exit_code == 0
    policy = load_policy(site)
    march = evaluate(three_pushes(), policy)
    april = evaluate(
        encounter(*(replace(a, start=a.start + timedelta(days=30)) for a in three_pushes().administrations)), policy
    )
    assert versioned("cpt-2026.1/facility/mue-2026q1").fullmatch(march.policy_version)
    assert versioned("cpt-2026.1/facility/mue-2026q2").fullmatch(april.policy_version)
    assert line(march, "96376").units == 1 and line(april, "96376").units == 2
    # an encounter from March 31 into April 1 is coded whole under the quarter of its first date
    late = [admin(1, 0), admin(2, 40), admin(3, 80)]
    spanning = encounter(*(replace(a, start=a.start + timedelta(days=29, hours=15)) for a in late))
    assert {ln.service_date for ln in evaluate(spanning, policy).lines} == {date(2026, 3, 31), date(2026, 4, 1)}
    assert re.search(r"/mue-2026q1\.[0-9a-f]{8}$", evaluate(spanning, policy).policy_version)
    # before any loaded quarter: no table, no suffix
    early = encounter(*(replace(a, start=a.start - timedelta(days=90)) for a in three_pushes().administrations))
    assert evaluate(early, policy).policy_version == "cpt-2026.1/facility"


def test_a_new_quarter_that_changes_a_line_changes_its_id(tmp_path: Path, policy: Policy) -> None:
    before = {ln.line_id for ln in evaluate(three_pushes(), policy).lines}
    after = {ln.line_id for ln in evaluate(three_pushes(), with_mue(tmp_path, [("96376", 1, 2)])).lines}
    assert before.isdisjoint(after)  # the version is in every id: a delta credits and rebills


def test_two_files_for_the_same_quarter_and_claim_type_do_not_load(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    assert import_mue(site, mue_csv(tmp_path, [("96376", 1, 2)])).exit_code == 0
    copy = (site / "cms" / "mue-facility-2026q1.yaml").read_text(encoding="utf-8")
    (site / "cms" / "copy.yaml").write_text(copy, encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_policy(site)
    assert any("mue facility effective date 2026-01-01 is also loaded from" in p for p in caught.value.problems)


def test_a_hand_edited_cms_mapping_is_checked_with_file_and_line(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    assert import_mue(site, mue_csv(tmp_path, [("96374", 1, 2), ("96376", 1, 2)])).exit_code == 0
    path = site / "cms" / "mue-facility-2026q1.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("mai: 2, rationale", "mai: 4, rationale", 1), encoding="utf-8"
    )
    with pytest.raises(MappingError) as caught:
        load_policy(site)
    assert caught.value.problems == [f"{path}:18: mai must be 1, 2 or 3 (MUE adjudication indicator): 4"]


def test_quarter_labels() -> None:
    assert quarter_label(date(2026, 1, 1)) == "2026q1"
    assert quarter_label(date(2026, 10, 1)) == "2026q4"
    assert quarter_label(date(2026, 2, 15)) == "2026q1-0215"


# --- the PTP import and rules -------------------------------------------------------------------


def infusion_then_push() -> Encounter:
    """A vancomycin infusion, then a morphine push: 96365 and 96375 on 2026-03-02."""
    return encounter(infusion(1, 0, 60), admin(2, 90, MORPHINE))


def test_the_ptp_import_keeps_pairs_of_emitted_codes_and_reads_star_as_no_deletion(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    rows = [
        ("96365", "96375", "20260101", "*", 0),
        ("99213", "96374", "20100101", "*", 1),
        ("96365", "96360", "19960101", "20200101", 9),
    ]
    result = import_ptp(site, ptp_txt(tmp_path, rows))
    assert result.exit_code == 0, result.output
    assert "2 of 3 pairs" in result.stdout
    table = load_policy(site).cms.ptp_for(ClaimType.FACILITY, date(2026, 3, 2))
    assert table is not None and table.label == "2026q1" and table.count == 2
    edit = table.by_column2["96375"][0]
    assert (edit.column1, edit.deleted_from, edit.modifier, edit.source) == ("96365", None, 0, PTP_NAME)


def test_a_ptp_header_split_over_two_rows_is_read_as_one(tmp_path: Path) -> None:
    file = tmp_path / PTP_NAME
    file.write_text(
        "CPT only copyright 2025 American Medical Association.\n"
        "Column 1\tColumn 2\t*=in existence\tEffective\tDeletion\tModifier\tPTP Edit Rationale\n"
        "\t\tprior to 1996\tDate\tDate *=no data\t0=not allowed 1=allowed 9=not applicable\t\n"
        "96365\t96375\t\t20260101\t*\t0\tMutually exclusive procedures\n",
        encoding="utf-8",
    )
    site = site_dir(tmp_path)
    assert import_ptp(site, file).exit_code == 0
    assert load_policy(site).cms.ptp[0].count == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("96365", "96375", "2026-01-01", "*", 0), "effective date '2026-01-01' of 96365/96375 is not YYYYMMDD"),
        (("96365", "96375", "20260101", "never", 0), "deletion date 'never' of 96365/96375 is not YYYYMMDD or *"),
        (("96365", "96375", "20260101", "*", 2), "modifier indicator '2' of 96365/96375 is not 0, 1 or 9"),
        (("96365", "96375", "20260101", "20250101", 0), "96365/96375 is deleted (20250101) before it is effective"),
    ],
)
def test_a_malformed_ptp_file_is_refused_with_file_and_line(
    tmp_path: Path, row: tuple[str, str, str, str, object], message: str
) -> None:
    site = site_dir(tmp_path)
    file = ptp_txt(tmp_path, [("96365", "96374", "20260101", "*", 1), row])
    result = import_ptp(site, file)
    assert result.exit_code == 2
    assert result.stderr == f"error: {file}:6: {message}\n"
    assert not (site / "cms").exists()


def test_indicator_0_flags_the_column_2_line_naming_the_pair_and_rationale(tmp_path: Path) -> None:
    policy = with_ptp(tmp_path, [("96365", "96375", "20260101", "*", 0)])
    coded = infusion_then_push()
    result = evaluate(coded, policy)
    assert versioned("cpt-2026.1/facility/ptp-2026q1").fullmatch(result.policy_version)
    push = line(result, "96375")
    assert set(push.flags) == {"ptp_conflict", "needs_review", "no_mue_on_file"}
    assert (
        "Needs review: NCCI PTP edit 96365/96375 (Misuse of column two code with column one code; "
        f"CMS file {PTP_NAME}): 96375 is denied beside 96365 on 2026-03-02, no modifier is allowed (indicator 0)."
    ) in push.reason
    assert "ptp_conflict" not in line(result, "96365").flags
    found = {o.administration_id: (o.outcome, o.reason) for o in outcomes(coded, result, policy)}
    assert found == {"a1": (OutcomeKind.CODED, "coded"), "a2": (OutcomeKind.NEEDS_REVIEW, "ptp_conflict")}


def test_indicator_1_without_a_documented_separate_site_flags_the_line(tmp_path: Path) -> None:
    result = evaluate(infusion_then_push(), with_ptp(tmp_path, [("96365", "96375", "20260101", "*", 1)]))
    push = line(result, "96375")
    assert "ptp_conflict" in push.flags and push.modifiers == ()
    assert (
        "a modifier is allowed (indicator 1) only when the services are distinct, a documented separate "
        "vascular access site on either line of the pair, which the feed does not show."
    ) in push.reason


def test_indicator_1_at_a_documented_second_site_takes_the_distinct_service_modifier(tmp_path: Path) -> None:
    policy = with_ptp(tmp_path, [("96365", "96374", "20260101", "*", 1)], allow_second_site_initial=True)
    coded = encounter(infusion(1, 0, 60, site="L-ANTECUBITAL"), admin(2, 90, MORPHINE, site="R-HAND"))
    result = evaluate(coded, policy)
    second = line(result, "96374", ("59",))
    assert "ptp_conflict" not in second.flags and "needs_review" not in second.flags
    assert "NCCI PTP edit 96365/96374" in second.reason
    assert "modifier indicator 1, 59 on this line shows a separate vascular access site." in second.reason


def test_indicator_1_on_a_separate_same_day_encounter_is_still_flagged_within_it(tmp_path: Path) -> None:
    policy = with_ptp(tmp_path, [("96365", "96375", "20260101", "*", 1)], separate_encounter_modifier="XE")
    result = evaluate(replace(infusion_then_push(), separate_same_day=True), policy)
    assert line(result, "96365", ("XE",)) is not None  # the other encounter's pair: XE on the initial, as before
    assert "ptp_conflict" in line(result, "96375").flags


def test_indicator_9_does_nothing(tmp_path: Path) -> None:
    result = evaluate(infusion_then_push(), with_ptp(tmp_path, [("96365", "96375", "20260101", "*", 9)]))
    assert all("ptp_conflict" not in ln.flags for ln in result.lines)
    assert all("PTP" not in ln.reason for ln in result.lines)


@pytest.mark.parametrize(
    ("effective", "deleted", "applies"),
    [
        ("20260302", "*", True),  # effective on the date of service
        ("20260303", "*", False),  # not yet effective
        ("20200101", "20260302", False),  # deleted from the date of service on
        ("20200101", "20260303", True),  # deleted the day after
        ("20200101", "20200101", False),  # deleted retroactively: never in force
    ],
)
def test_effective_and_deletion_dates(tmp_path: Path, effective: str, deleted: str, applies: bool) -> None:
    result = evaluate(infusion_then_push(), with_ptp(tmp_path, [("96365", "96375", effective, deleted, 0)]))
    assert ("ptp_conflict" in line(result, "96375").flags) is applies


def test_both_tables_name_their_quarters_in_the_version(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    assert import_mue(site, mue_csv(tmp_path, [("96375", 1, 3)])).exit_code == 0
    assert import_ptp(site, ptp_txt(tmp_path, [("96365", "96375", "20260101", "*", 0)])).exit_code == 0
    result = evaluate(infusion_then_push(), load_policy(site))
    assert versioned("cpt-2026.1/facility/mue-2026q1/ptp-2026q1").fullmatch(result.policy_version)
    check = CliRunner().invoke(cli, ["check", "--mappings", str(site)])
    assert "CMS tables: mue facility 2026q1 (1 codes), ptp facility 2026q1 (1 pairs)" in check.output


def test_import_ptp_reads_every_file_of_the_quarter_and_names_each_entrys_file(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    first = ptp_txt(tmp_path, [("0001A", "0591T", "20210101", "*", 1)], name="ccioph-v321r0-f1.txt")
    fourth = ptp_txt(tmp_path, [("96365", "96375", "20260101", "*", 0)])
    result = run("import-ptp", first, fourth, "--claim-type", "facility", "--effective", "2026-01-01", "--out", site)
    assert result.exit_code == 0, result.output
    assert "1 of 2 pairs" in result.stdout
    text = (site / "cms" / "ptp-facility-2026q1.yaml").read_text(encoding="utf-8")
    assert f'source_files: ["ccioph-v321r0-f1.txt", "{PTP_NAME}"]' in text
    table = load_policy(site).cms.ptp[0]
    assert table.by_column2["96375"][0].source == PTP_NAME


def test_a_payer_mue_entry_with_a_wrong_mai_is_refused(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    (site / "payers").mkdir()
    (site / "payers" / "default.yaml").write_text(
        "meta: {name: default, reviewed: 2026-11-26, reference: test, effective_from: 2009-01-01}\n"
        "settings:\n  mue:\n    - {code: '96376', facility_units: 3, mai: 5, reference: 'CMS MUE file'}\n",
        encoding="utf-8",
    )
    with pytest.raises(MappingError) as caught:
        load_policy(site)
    assert caught.value.problems == [
        f"{site}/payers/default.yaml:4: mai must be 1, 2 or 3 (MUE adjudication indicator): 5"
    ]


# --- review of #16: real header layouts, strict reading, versions by content ---------------------

# The header of the PTP .txt files as CMS publishes them (v32.3): the column names on one row,
# then three rows of their own for the rest of the names and the legends, code columns empty.
PTP_HEADER_4_ROWS = (
    "Column 1\tColumn 2\t*=in existence\tEffective\tDeletion\tModifier\tPTP Edit Rationale",
    "\t\tprior to 1996\tDate\tDate\t0=not allowed\t",
    "\t\t\t\t*=no data\t1=allowed\t",
    "\t\t\t\t\t9=not applicable\t",
)
# v32.1: the names on one row, the legends on three more.
PTP_HEADER_1_PLUS_3 = (
    "Column 1\tColumn 2\t*=in existence prior to 1996\tEffective Date\tDeletion Date\tModifier\tPTP Edit Rationale",
    "\t\t\t\t\t0=not allowed\t",
    "\t\t\t\t*=no data\t1=allowed\t",
    "\t\t\t\t\t9=not applicable\t",
)


def ptp_file(folder: Path, header: tuple[str, ...], rows: list[str], name: str = "ccioph-v323r0-f1.txt") -> Path:
    """A PTP .txt with a given header layout: the notice and title with trailing tabs, as CMS writes them."""
    body = [
        "CPT only copyright 2025 American Medical Association.  All rights reserved.\t\t\t\t\t\t",
        "Column1/Column2 Edits\t\t\t\t\t\t",
        *header,
        *rows,
    ]
    path = folder / name
    path.write_text("\r\n".join(body) + "\r\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("header", [PTP_HEADER_4_ROWS, PTP_HEADER_1_PLUS_3])
def test_a_ptp_header_with_three_rows_of_names_and_legends_below_it_is_read(
    tmp_path: Path, header: tuple[str, ...]
) -> None:
    rows = [
        "96365\t96375\t\t20260101\t*\t0\tMutually exclusive procedures",
        "96365\t96374\t\t20260101\t*\t1\tMisuse of column two code with column one code",
    ]
    site = site_dir(tmp_path)
    result = import_ptp(site, ptp_file(tmp_path, header, rows))
    assert result.exit_code == 0, result.output
    table = load_policy(site).cms.ptp[0]
    assert table.count == 2
    assert table.by_column2["96375"][0].origin and table.by_column2["96375"][0].modifier == 0
    text = (site / "cms" / "ptp-facility-2026q1.yaml").read_text(encoding="utf-8")
    assert 'source: "ccioph-v323r0-f1.txt:7"' in text  # the first row after the 2 notice and 4 header rows


def test_a_ptp_data_row_without_codes_right_below_the_header_is_refused_not_read_as_header(tmp_path: Path) -> None:
    rows = ["\t\t\t20260101\t*\t1\tMisuse of column two code with column one code", "96365\t96375\t\t20260101\t*\t0\tx"]
    file = ptp_file(tmp_path, PTP_HEADER_4_ROWS, rows)
    site = site_dir(tmp_path)
    result = import_ptp(site, file)
    assert result.exit_code == 2
    assert result.stderr == f"error: {file}:7: HCPCS/CPT code '' is not 5 letters or digits\n"
    assert not (site / "cms").exists()


def test_an_mue_data_row_without_a_code_right_below_the_header_is_refused(tmp_path: Path) -> None:
    file = mue_csv(tmp_path, [("", 1, 3), ("96374", 1, 3)])
    result = import_mue(site_dir(tmp_path), file)
    assert result.exit_code == 2
    assert result.stderr == f"error: {file}:6: HCPCS/CPT code '' is not 5 letters or digits\n"


@pytest.mark.parametrize(
    ("rows", "line_no", "message"),
    [
        # a quote left open swallows the next row: refused, never read as one row with shifted cells
        (
            ['"96374","1","3 Date of Service Edit: Clinical","Clinical: Data', '"96375","1","1 Line Edit","x"'],
            6,
            "not readable as CSV: a quoted cell from here closes on line 7 with more text after the quote",
        ),
        (
            ['"96374","1","3 Date of Service Edit: Clinical","Clinical: Data'],
            6,
            "not readable as CSV: a quote from here is not closed by the end of the file",
        ),
        # a quoted cell that closes at the end of a later line: still one data row per line
        (
            ['"96374","1","3 Date of Service Edit: Clinical","Clinical:', 'Data"', '"96375","1","1 Line Edit","x"'],
            6,
            "a quoted cell runs from line 6 to line 7: a data row is one line",
        ),
        # a row with more (filled) cells, or fewer, than the header
        (['"96374","1","3 Date of Service Edit: Clinical","Clinical: Data","extra"'], 6, "5 cells where the header"),
        (['"96374","1","3 Date of Service Edit: Clinical"'], 6, "3 cells where the header has 4"),
    ],
)
def test_a_misplaced_quote_or_a_row_of_the_wrong_width_is_refused_with_file_and_line(
    tmp_path: Path, rows: list[str], line_no: int, message: str
) -> None:
    file = tmp_path / MUE_NAME
    file.write_text("\r\n".join([*NOTICE, MUE_HEADER, *rows]) + "\r\n", encoding="utf-8")
    site = site_dir(tmp_path)
    result = import_mue(site, file)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {file}:{line_no}: {message}")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert not (site / "cms").exists()


def test_a_misplaced_quote_in_a_ptp_file_is_refused(tmp_path: Path) -> None:
    rows = [
        '96365\t96374\t\t20260101\t*\t1\t"Misuse of column two code',
        "96365\t96375\t\t20260101\t*\t0\tMutually exclusive procedures",
        '96365\t96376\t\t20260101\t*\t0\t"Standards" of practice',
    ]
    file = ptp_file(tmp_path, PTP_HEADER_4_ROWS, rows)
    site = site_dir(tmp_path)
    result = import_ptp(site, file)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {file}:7: not readable as tab-delimited text: a quoted cell from here")
    assert not (site / "cms").exists()


@pytest.mark.parametrize("value", ["\u00b2", "\uff12", "1\u00b9"])
def test_an_mue_value_in_other_digits_is_refused_not_a_traceback(tmp_path: Path, value: str) -> None:
    file = tmp_path / MUE_NAME
    file.write_text(f'{MUE_HEADER}\n"96374","{value}","3 Date of Service Edit: Clinical","x"\n', encoding="utf-8")
    result = import_mue(site_dir(tmp_path), file)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr == f"error: {file}:2: MUE value {value!r} for 96374 is not a whole number\n"


def test_a_ptp_date_in_other_digits_is_refused(tmp_path: Path) -> None:
    file = ptp_txt(tmp_path, [("96365", "96375", "\uff12\uff10\uff12\uff16\uff10\uff11\uff10\uff11", "*", 0)])
    result = import_ptp(site_dir(tmp_path), file)
    assert result.exit_code == 2 and "is not YYYYMMDD" in result.stderr


def test_the_version_names_the_tables_content_so_a_changed_reimport_changes_the_ids(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    first = ptp_txt(tmp_path, [("96365", "96360", "20260101", "*", 0)], name="ccioph-v321r0-f1.txt")
    assert import_ptp(site, first).exit_code == 0
    before = evaluate(infusion_then_push(), load_policy(site))
    written = (site / "cms" / "ptp-facility-2026q1.yaml").read_text(encoding="utf-8")
    digest = load_policy(site).cms.ptp[0].digest
    assert re.fullmatch(r"[0-9a-f]{8}", digest) and f'  digest: "{digest}"' in written
    assert before.policy_version == f"cpt-2026.1/facility/ptp-2026q1.{digest}"
    # the same file again: the same version, the same ids (nothing to send)
    assert import_ptp(site, first).exit_code == 0
    assert evaluate(infusion_then_push(), load_policy(site)).lines == before.lines
    # the quarter's f4 added (or a CMS revision): another version, so the changed flag goes downstream
    fourth = ptp_txt(tmp_path, [("96365", "96375", "20260101", "*", 0)], name="ccioph-v321r0-f4.txt")
    result = run("import-ptp", first, fourth, "--claim-type", "facility", "--effective", "2026-01-01", "--out", site)
    assert result.exit_code == 0, result.output
    after = evaluate(infusion_then_push(), load_policy(site))
    assert after.policy_version != before.policy_version
    assert f"name {after.policy_version.rsplit('/', 1)[1]} in their policy version" in result.stdout
    assert {ln.line_id for ln in before.lines}.isdisjoint(ln.line_id for ln in after.lines)
    assert "ptp_conflict" in line(after, "96375").flags


def test_a_changed_mue_value_changes_the_version(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    assert import_mue(site, mue_csv(tmp_path, [("96376", 1, 2)])).exit_code == 0
    one = evaluate(three_pushes(), load_policy(site)).policy_version
    assert import_mue(site, mue_csv(tmp_path, [("96376", 1, 3)])).exit_code == 0  # only the MAI changed
    assert evaluate(three_pushes(), load_policy(site)).policy_version != one


def test_an_entry_changed_after_the_import_is_refused_at_load(tmp_path: Path) -> None:
    site = site_dir(tmp_path)
    assert import_mue(site, mue_csv(tmp_path, [("96376", 1, 2)])).exit_code == 0
    path = site / "cms" / "mue-facility-2026q1.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("value: 1,", "value: 2,"), encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_policy(site)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:11: meta.digest ") and "re-import the CMS file" in problem


@pytest.mark.parametrize(
    ("name", "notice", "evidence"),
    [
        ("ccipra-v321r0-f1.txt", "", "the file name 'ccipra-v321r0-f1.txt' says the Practitioner PTP edits"),
        ("ptp-edits-q1.txt", "Practitioner PTP Edits", "line 3 ('Practitioner PTP Edits') says the Practitioner"),
    ],
)
def test_a_practitioner_ptp_file_is_refused_for_facility_claims(
    tmp_path: Path, name: str, notice: str, evidence: str
) -> None:
    body = ["CPT only copyright 2025 American Medical Association.", "", notice, PTP_HEADER]
    file = tmp_path / name
    file.write_text("\n".join([*body, "96365\t96375\t\t20260101\t*\t0\tx"]) + "\n", encoding="utf-8")
    site = site_dir(tmp_path)
    result = import_ptp(site, file)
    assert result.exit_code == 2
    assert evidence in result.stderr and "--claim-type facility needs the Hospital PTP edits" in result.stderr
    assert not (site / "cms").exists()
    assert import_ptp(site, file, claim="professional").exit_code == 0


def test_a_hospital_ptp_file_is_refused_for_professional_claims(tmp_path: Path) -> None:
    result = import_ptp(
        site_dir(tmp_path), ptp_txt(tmp_path, [("96365", "96375", "20260101", "*", 0)]), claim="professional"
    )
    assert result.exit_code == 2 and "says the Hospital PTP edits (ccioph…); --claim-type professional" in result.stderr


def test_practitioner_and_hospital_ptp_files_are_not_mixed(tmp_path: Path) -> None:
    hospital = ptp_txt(tmp_path, [("96365", "96375", "20260101", "*", 0)], name="ccioph-v321r0-f1.txt")
    practitioner = ptp_txt(tmp_path, [("96365", "96374", "20260101", "*", 0)], name="ccipra-v321r0-f1.txt")
    site = site_dir(tmp_path)
    for claim in ("facility", "professional"):
        result = run(
            "import-ptp", hospital, practitioner, "--claim-type", claim, "--effective", "2026-01-01", "--out", site
        )
        assert result.exit_code == 2
        assert (
            "the files mix practitioner (ccipra-v321r0-f1.txt) and hospital (ccioph-v321r0-f1.txt) PTP edits"
            in result.stderr
        )
    assert not (site / "cms").exists()


@pytest.mark.parametrize("where", [DEFAULT_DIR, DEFAULT_DIR / "cms"])
def test_the_import_never_writes_into_the_shipped_mappings(tmp_path: Path, where: Path) -> None:
    existed = (DEFAULT_DIR / "cms").exists()
    file = mue_csv(tmp_path, [("96374", 1, 2)])
    try:
        result = run("import-mue", file, "--claim-type", "facility", "--effective", "2026-01-01", "--out", where)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: {where} is the shipped mappings directory")
        assert len(result.stderr.splitlines()) == 1
        assert (DEFAULT_DIR / "cms").exists() is existed
    finally:
        if not existed and (DEFAULT_DIR / "cms").exists():  # never leave a failed run's file in the checkout
            for path in (DEFAULT_DIR / "cms").glob("*"):
                path.unlink()
            (DEFAULT_DIR / "cms").rmdir()


def test_a_failed_import_leaves_no_empty_cms_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_site: Path) -> Policy:
        raise MappingError(["site/cms/x.yaml:1: refused"])

    monkeypatch.setattr(command, "load_policy", refuse)
    site = site_dir(tmp_path)
    result = import_mue(site, mue_csv(tmp_path, [("96374", 1, 2)]))
    assert result.exit_code == 2 and "refused (not written)" in result.stderr
    assert not (site / "cms").exists()
    fresh = tmp_path / "new-site"
    file = mue_csv(tmp_path, [("96374", 1, 2)])
    result = run("import-mue", file, "--claim-type", "facility", "--effective", "2026-01-01", "--out", fresh)
    assert result.exit_code == 2 and not fresh.exists()


def test_indicator_1_with_the_distinct_site_modifier_on_the_column_1_line_is_not_flagged(tmp_path: Path) -> None:
    # the pair's column-1 code is the second-site initial (96374-59), its column-2 code the main initial
    policy = with_ptp(tmp_path, [("96374", "96365", "20260101", "*", 1)], allow_second_site_initial=True)
    coded = encounter(infusion(1, 0, 60, site="L-ANTECUBITAL"), admin(2, 90, MORPHINE, site="R-HAND"))
    result = evaluate(coded, policy)
    main = line(result, "96365")
    assert "ptp_conflict" not in main.flags and "needs_review" not in main.flags
    assert main.reason.endswith(
        "NCCI PTP edit 96374/96365 (Misuse of column two code with column one code; CMS file ccioph-v321r0-f4.txt): "
        "modifier indicator 1, 59 on 96374-59 (column 1) shows a separate vascular access site: 96365 is not "
        "denied beside it."
    )
    second = line(result, "96374", ("59",))
    assert second.reason.endswith(
        "modifier indicator 1, 59 on this line shows a separate vascular access site from 96365."
    )
    assert {o.outcome for o in outcomes(coded, result, policy)} == {OutcomeKind.CODED}


def test_indicator_1_is_still_flagged_beside_a_column_1_line_at_the_same_site() -> None:
    day = date(2026, 3, 2)
    edit = PtpEdit("96374", "96375", date(2026, 1, 1), None, 1, "r", "o:1", "f.txt")
    table = PtpTable("2026q1", ClaimType.FACILITY, date(2026, 1, 1), "f.txt", "o", {"96375": (edit,)})

    def draft(code: str, modifiers: tuple[str, ...], admin_id: str, rule: str) -> Draft:
        return Draft(day, code, modifiers, 1, (admin_id,), rule, "R.", set(), "ED")

    main, other = draft("96374", (), "a1", "initial.push"), draft("96374", ("59",), "a2", "initial.push")
    push = draft("96375", (), "a3", "push.new_drug")
    reviews: list[Review] = []
    apply_ptp([main, other, push], table, "59", frozenset({"a2"}), reviews)
    assert push.flags == {"ptp_conflict", "needs_review"} and len(reviews) == 1  # 96374 at the main site
