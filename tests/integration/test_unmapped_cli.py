"""`ivpush unmapped` over feeds and a state; its YAML, once the placeholders are filled, maps the codes."""

import re
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from connector.cli.main import cli

ZONE = "America/New_York"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ras(control: str, route: str, drug: str, in1: str = "") -> bytes:
    segments = [
        f"MSH|^~\\&|EPIC|GENHOSP|IVPUSH|GENHOSP|20260302101500-0500||RAS^O17^RAS_O17|{control}|P|2.5.1",
        "PID|1||MRN0001^^^GENHOSP^MR||TEST^PATIENT||19800101|F",
        "PV1|1|E|ED^B12^01^GENHOSP||||9999^DOCTOR^TEST||||||||||||V1^^^GENHOSP^VN",
        *([in1] if in1 else []),
        f"ORC|RE|ORD{control}^EPC|FIL{control}^EPC",
        f"RXA|0|1|20260302101500||{drug}|4|mg|||||||||||||CP",
        f"RXR|{route}|||IVP^IV Push^HL70165",
    ]
    return "\r".join(segments).encode()


ONDANSETRON = "313002^ondansetron 2 MG/ML Injectable Solution^RXNORM"
FEED = [
    ras("M1", "IVPU^IV push slow^L", ONDANSETRON),
    ras("M2", "IVPU^IV push slow^L", ONDANSETRON),
    ras("M3", "IV^Intravenous^HL70162", "999^Zapomab 10 MG^LOCALRX"),
    ras("M4", "IV^Intravenous^HL70162", ONDANSETRON, in1="IN1|1||ACME01"),
]


def write_feed(tmp_path: Path) -> Path:
    path = tmp_path / "feed.hl7"
    path.write_bytes(b"\n".join(FEED) + b"\n")
    return path


def test_feeds_list_each_local_code_with_count_field_and_a_sample_source(tmp_path: Path) -> None:
    path = write_feed(tmp_path)
    result = invoke("unmapped", "--zone", ZONE, str(path))
    assert result.exit_code == 0, result.output
    rows = [row.split(None, 5) for row in result.output.strip().splitlines()[1:]]
    assert rows[0][:5] == ["2", "route", "L", "IVPU", "RXR-1"]
    assert re.fullmatch(rf"{re.escape(str(path))} byte \d+, message M[12]", rows[0][5])
    found = {(row[1], row[3]) for row in rows}
    assert ("drug", "999") in found and ("payer", "ACME01") in found
    assert "MRN0001" not in result.output and "TEST" not in result.output


def test_a_state_lists_the_same_codes_as_its_feeds(tmp_path: Path) -> None:
    path, state = write_feed(tmp_path), tmp_path / "state.db"
    assert invoke("replay", "--zone", ZONE, "--state", str(state), str(path)).exit_code == 0
    from_state = invoke("unmapped", "--state", str(state))
    assert from_state.exit_code == 0, from_state.output
    assert from_state.output == invoke("unmapped", "--zone", ZONE, str(path)).output


def test_unmapped_usage_errors_and_states_that_cannot_be_read_exit_2(tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["unmapped"]).exit_code == 2
    assert CliRunner().invoke(cli, ["unmapped", "x.hl7", "--state", "s.db"]).exit_code == 2
    missing = CliRunner().invoke(cli, ["unmapped", "--state", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and missing.output.strip() == f"error: no such state file: {tmp_path / 'none.db'}"


def test_the_yaml_with_its_placeholders_filled_passes_check_and_maps_the_codes(tmp_path: Path) -> None:
    path = write_feed(tmp_path)
    text = invoke("unmapped", "--zone", ZONE, "--format", "yaml", str(path)).output
    site = tmp_path / "site"
    site.mkdir()
    for document, name in zip(text.split("\n---\n"), ("routes", "drugs", "payer_map"), strict=True):
        assert yaml.safe_load(document)["meta"]["name"] == name
        refused = site / f"{name}.yaml"
        refused.write_text(document)
        unfilled = invoke("check", "--mappings", str(site))
        assert unfilled.exit_code == 2, f"{name}: placeholders must not pass check"
        refused.write_text(fill(document))
    checked = invoke("check", "--mappings", str(site))
    assert checked.exit_code == 0, checked.output
    after = invoke("unmapped", "--zone", ZONE, "--mappings", str(site), str(path))
    assert after.output.strip() == "No local codes missing from the mappings."
    explained = invoke("explain", "--zone", ZONE, "--mappings", str(site), str(path))
    assert "needs review (" not in explained.output and "needs review: none" in explained.output
    assert re.search(r"mappings: .*site/routes\.yaml:\d+", explained.output)


def fill(document: str) -> str:
    """Replace each placeholder the way a site would (the choices offered, dates, names)."""
    replacements = {
        r'"<YYYY-MM-DD: first date[^"]*>"': "2026-01-01",
        r'"<YYYY-MM-DD[^"]*>"': "2026-11-26",
        r'"<iv \| im \| sq \| other>"': "iv",
        r'"<ingredient: an entry[^"]*>"': "ondansetron",
        r'"<aetna \| bcbs[^"]*>"': "aetna",
        r'"<ingredient, lower case[^"]*>"': "zapomab",
        r'"<RxNorm CUI[^"]*>"': '"0"',
        r'"<therapeutic \| chemo[^"]*>"': "chemo",
        r'"<[^"]*>"': '"site decision"',
    }
    for pattern, value in replacements.items():
        document = re.sub(pattern, value, document)
    return document
