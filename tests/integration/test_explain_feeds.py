"""`ivpush explain` over feeds and over a stored encounter: every input accounted for, sources, history."""

import re
from pathlib import Path

import pytest
from ci import skip_unless_ci
from click.testing import CliRunner, Result

from connector.adapters.archive import read_records
from connector.adapters.dispatch import read_record
from connector.adapters.errors import AdapterError
from connector.bootstrap import local_zone
from connector.cli.main import cli
from connector.policy.model import Policy

ROOT = Path(__file__).resolve().parents[2]
HL7 = ROOT / "tests" / "samples" / "hl7"
SHARED = ROOT.parent / "shared" / "samples" / "hl7"
# The public RAS samples of ../shared/samples, copied byte for byte into tests/samples.
SHARED_RAS = [
    "epic-shaped-ras-o17-given.hl7",
    "jahis-ras-o17-infusion-pump.hl7",
    "jahis-ras-o17-oral.hl7",
    "meditech-shaped-ras-o17-delete-lf.hl7",
    "uhn-cgta-ras-o17-multi-admin.hl7",
]
ZONE = "America/New_York"
OUTCOME = re.compile(r"^ {8}(coded → |no line \(|needs review \()", re.MULTILINE)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ras(control: str, visit: str, route: str = "IV^Intravenous^HL70162", start: str = "20260302101500") -> bytes:
    return "\r".join(
        [
            f"MSH|^~\\&|EPIC|GENHOSP|IVPUSH|GENHOSP|{start}-0500||RAS^O17^RAS_O17|{control}|P|2.5.1",
            "PID|1||MRN0001^^^GENHOSP^MR||TEST^PATIENT||19800101|F",
            f"PV1|1|E|ED^B12^01^GENHOSP||||9999^DOCTOR^TEST||||||||||||{visit}^^^GENHOSP^VN",
            f"ORC|RE|ORD{control}^EPC|FIL{control}^EPC",
            f"RXA|0|1|{start}||313002^ondansetron 2 MG/ML Injectable Solution^RXNORM|4|mg|||||||||||||CP",
            f"RXR|{route}|||IVP^IV Push^HL70165",
        ]
    ).encode()


def feed(path: Path, *messages: bytes) -> Path:
    path.write_bytes(b"\n".join(messages) + b"\n")
    return path


def accounted(paths: list[str], policy: Policy) -> tuple[set[str], list[tuple[str, str, str]]]:
    """The administration ids read and the (source, position, code) of every record rejected on reading."""
    admins: set[str] = set()
    rejected: list[tuple[str, str, str]] = []
    for record in read_records(paths):
        try:
            found = read_record(record, policy, local_zone(ZONE), 1 << 20)
        except AdapterError as error:
            rejected.append((record.source, record.position, error.code))
            continue
        admins.update(a.id for item in found.records for a in item.administrations)
    return admins, rejected


def test_every_administration_of_the_shared_samples_gets_an_outcome_or_its_record_a_reject(policy: Policy) -> None:
    paths = [str(HL7 / name) for name in SHARED_RAS]
    result = invoke("explain", "--zone", ZONE, *paths)
    assert result.exit_code == 0, result.output
    admins, rejected = accounted(paths, policy)
    explained = {admin for admin in admins if re.search(rf"\s{admin}\s", result.output)}
    rejects = result.output.split("\nRejects")[1]
    for admin in admins - explained:  # not explained: its record must be a reject line naming its file
        assert any(name in rejects for name in SHARED_RAS), admin
    assert len(OUTCOME.findall(result.output)) == len(explained)
    for source, position, code in rejected:
        assert f"  {code}  {source} {position}:" in rejects
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith("records read: 5;")
    count = int(re.search(r"administrations: (\d+);", summary).group(1))  # type: ignore[union-attr]
    assert len(OUTCOME.findall(result.output)) == count


def test_the_shared_directory_as_given_in_the_issue_is_explained_in_full() -> None:
    if not SHARED.is_dir():
        skip_unless_ci("shared samples not laid out beside the repository (../shared/samples)")
    paths = sorted(str(p) for p in SHARED.glob("*.hl7"))
    result = invoke("explain", *paths)
    assert result.exit_code == 0, result.output
    assert "unsupported_message_type  " in result.output  # the DFT sample: an input, rejected with its code
    summary = result.output.strip().splitlines()[-1]
    count = int(re.search(r"administrations: (\d+);", summary).group(1))  # type: ignore[union-attr]
    assert len(OUTCOME.findall(result.output)) == count
    rejects = int(re.search(r"rejects: (\d+) ", summary).group(1))  # type: ignore[union-attr]
    assert result.output.count(f"{SHARED}/") >= rejects


def test_an_unmapped_local_route_is_explained_with_its_code_field_source_and_mappings(tmp_path: Path) -> None:
    unmapped, coded = ras("M1", "V1", route="IVPU^IV push slow^L"), ras("M2", "V1", start="20260302120000")
    path = feed(tmp_path / "feed.hl7", unmapped, coded)
    result = invoke("explain", "--zone", ZONE, str(path))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Encounter GENHOSP|V1" in out
    assert "class emergency, facility claim, payer default (policy cpt-2026.1/facility), place of service 23" in out
    assert "2026-03-02 10:15-05:00" in out  # local time with its offset
    assert "needs review (unmapped_route)" in out
    assert "not in the mappings: route L|IVPU (RXR-1)" in out
    assert f"source: {path} byte 0, message M1" in out
    assert "coded → 96374" in out
    assert re.search(r"mappings: .*mappings/methods\.yaml:\d+", out)
    assert "Rejects: none" in out
    assert "needs review: 1 unmapped_route" in out


def test_the_encounter_filter_keeps_one_encounter(tmp_path: Path) -> None:
    path = feed(tmp_path / "feed.hl7", ras("M1", "V1"), ras("M2", "V2"))
    result = invoke("explain", "--zone", ZONE, "--encounter", "V2", str(path))
    assert "Encounter GENHOSP|V2" in result.output and "GENHOSP|V1" not in result.output


def test_standard_input_is_explained_like_a_file() -> None:
    result = CliRunner().invoke(cli, ["explain", "-"], input=ras("M1", "V9"))
    assert result.exit_code == 0, result.output
    assert "Encounter GENHOSP|V9" in result.output and "source: - byte 0, message M1" in result.output


def stored(tmp_path: Path, *messages: bytes) -> Path:
    state = tmp_path / "state.db"
    result = invoke("replay", "--zone", ZONE, "--state", str(state), str(feed(tmp_path / "feed.hl7", *messages)))
    assert result.exit_code == 0, result.output
    return state


def test_a_stored_encounter_is_explained_with_its_history(tmp_path: Path) -> None:
    state = stored(tmp_path, ras("M1", "V1"), ras("M2", "V1", start="20260302104500"))
    for wanted in ("V1", "GENHOSP|V1"):
        result = invoke("explain", "--state", str(state), "--encounter", wanted)
        assert result.exit_code == 0, result.output
        out = result.output
        assert out.startswith("Encounter GENHOSP|V1\n  state: closed; 1 charge message(s) emitted")
        assert "coded → 96374" in out and "no line (within_interval)" in out
        assert f"source: {tmp_path / 'feed.hl7'} byte 0, message M1" in out
        assert "Stored outcomes" not in out  # the same mappings: nothing differs
        assert "Messages emitted (1):" in out
        assert re.search(r"#0  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  close  msg-\w+ policy cpt-2026\.1/facility", out)
        assert re.search(r"charge 96374 x1 2026-03-02 ln-\w+: Initial IV push", out)
        assert "MRN0001" not in out and "TEST" not in out  # no patient data from the message bodies


def test_a_stored_encounter_coded_again_under_new_mappings_shows_the_stored_outcomes_that_differ(
    tmp_path: Path,
) -> None:
    state = stored(tmp_path, ras("M1", "V1", route="IVPU^IV push slow^L"))
    site = tmp_path / "site"
    site.mkdir()
    (site / "routes.yaml").write_text(
        "meta: {name: routes, reviewed: 2026-11-26, reference: site dictionary}\n"
        "codes:\n  - {system: L, code: IVPU, route: iv, reference: site dictionary}\n"
    )
    result = invoke("explain", "--state", str(state), "--encounter", "V1", "--mappings", str(site))
    assert result.exit_code == 0, result.output
    assert "coded → 96374" in result.output
    assert "stored needs review (unmapped_route), now coded → 96374" in result.output
    assert "Messages emitted: none" in result.output


@pytest.mark.parametrize("setup", ["missing", "not_a_database", "unknown_encounter"])
def test_a_state_that_cannot_be_read_or_an_unknown_encounter_is_one_line_exit_2(tmp_path: Path, setup: str) -> None:
    state = tmp_path / "state.db"
    if setup == "not_a_database":
        state.write_bytes(b"this is not SQLite\n" * 100)
    elif setup == "unknown_encounter":
        state = stored(tmp_path, ras("M1", "V1"))
    result = CliRunner().invoke(cli, ["explain", "--state", str(state), "--encounter", "NOPE"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    assert not (setup == "missing" and state.exists())  # nothing created


def test_explain_usage_errors_exit_2(tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["explain"]).exit_code == 2
    assert CliRunner().invoke(cli, ["explain", "--state", "s.db"]).exit_code == 2
    assert CliRunner().invoke(cli, ["explain", "x.hl7", "--state", "s.db", "--encounter", "V1"]).exit_code == 2
    assert CliRunner().invoke(cli, ["explain", str(tmp_path / "nope.hl7")]).exit_code == 2


def test_a_visit_number_two_authorities_share_is_refused_naming_both(tmp_path: Path) -> None:
    other = ras("M2", "V1").replace(b"V1^^^GENHOSP^VN", b"V1^^^OTHERHOSP^VN")
    state = stored(tmp_path, ras("M1", "V1"), other)
    result = CliRunner().invoke(cli, ["explain", "--state", str(state), "--encounter", "V1"])
    assert result.exit_code == 2
    assert "names 2 encounters: GENHOSP|V1, OTHERHOSP|V1" in result.output
