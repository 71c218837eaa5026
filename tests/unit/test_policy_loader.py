from pathlib import Path

import pytest
import yaml

from connector.model import CodedValue, Coding
from connector.policy import yamlfile
from connector.policy.loader import load_policy
from connector.policy.model import MethodKind, Policy, RouteKind
from connector.policy.yamlfile import MappingError
from connector.shipped import shipped_dir

META = "meta: {name: x, reviewed: 2026-11-26, reference: test, effective_from: 2020-01-01}\n"
DAY = __import__("datetime").date(2026, 3, 2)


def site(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(META + body, encoding="utf-8")
    return tmp_path


def test_the_shipped_mappings_load_and_cover_every_payer_in_the_rules(policy: Policy) -> None:
    assert {"default", "medicare", "bcbs", "uhc", "aetna", "cigna"} <= set(policy.payers)
    assert policy.chargemaster.lookup("96376", "")[1] == "0260"
    assert policy.chargemaster.lookup("96376", "ED")[1] == "0450"


def test_table_0165_ivp_is_a_push_and_table_0164_ivp_is_a_pump(policy: Policy) -> None:
    push, _ = policy.method_of(CodedValue((Coding("HL70165", "IVP"),)), DAY)
    pump, _ = policy.method_of(CodedValue((Coding("http://terminology.hl7.org/CodeSystem/v2-0164", "IVP"),)), DAY)
    assert push is not None and push.method is MethodKind.PUSH
    assert pump is not None and pump.method is MethodKind.INFUSION


def test_route_codes_match_with_their_system_and_texts_case_insensitively(policy: Policy) -> None:
    snomed, _ = policy.route_of(CodedValue((Coding("http://snomed.info/sct", "47625008"),)), DAY)
    text, evidence = policy.route_of(CodedValue(text="intraven."), DAY)
    unknown, _ = policy.route_of(CodedValue((Coding("SNOMED", "IV"),)), DAY)
    assert snomed is not None and snomed.route is RouteKind.IV
    assert text is not None and text.route is RouteKind.IV and "routes.yaml" in evidence
    assert unknown is None


def test_a_site_overlay_replaces_a_default_entry_and_adds_its_own(tmp_path: Path) -> None:
    site(
        tmp_path,
        "routes",
        "texts:\n  - {text: IV PUSH, route: iv, method: infusion}\n  - {text: IV-P, route: iv, method: push}\n",
    )
    policy = load_policy(tmp_path)
    replaced, _ = policy.route_of(CodedValue(text="IV PUSH"), DAY)
    added, _ = policy.route_of(CodedValue(text="iv-p"), DAY)
    assert replaced is not None and replaced.method is MethodKind.INFUSION
    assert added is not None and added.method is MethodKind.PUSH


def test_entries_apply_only_within_their_effective_dates(tmp_path: Path) -> None:
    site(tmp_path, "routes", "texts:\n  - {text: VEIN, route: iv, effective_from: 2026-04-01}\n")
    policy = load_policy(tmp_path)
    assert policy.route_of(CodedValue(text="VEIN"), DAY)[0] is None
    assert policy.route_of(CodedValue(text="VEIN"), __import__("datetime").date(2026, 4, 1))[0] is not None


def test_errors_name_the_file_and_line_of_every_problem(tmp_path: Path) -> None:
    site(
        tmp_path, "routes", "texts:\n  - {text: A, route: iv}\n  - {text: B, route: veins}\n  - {text: a, route: im}\n"
    )
    with pytest.raises(MappingError) as caught:
        load_policy(tmp_path)
    problems = caught.value.problems
    assert any(p.startswith(f"{tmp_path}/routes.yaml:4: route 'veins'") for p in problems), problems
    assert any(p.startswith(f"{tmp_path}/routes.yaml:5: duplicate of the entry at line 3") for p in problems), problems


def test_invalid_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "methods.yaml").write_text(META + "codes:\n  - {system: X, code: [\n", encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_policy(tmp_path)
    assert caught.value.problems[0].startswith(f"{tmp_path}/methods.yaml:")
    assert "not valid YAML" in caught.value.problems[0]


def test_a_file_without_review_metadata_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text("meta: {name: routes}\ntexts: []\n", encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_policy(tmp_path)
    assert f"{tmp_path}/routes.yaml:1: meta.reviewed is required" in caught.value.problems


def test_payer_settings_are_type_checked_and_unknown_keys_refused(tmp_path: Path) -> None:
    site(tmp_path / "payers", "medicare", "settings:\n  same_drug_min_interval_minutes: thirty\n  allow_96376: true\n")
    with pytest.raises(MappingError) as caught:
        load_policy(tmp_path)
    text = "\n".join(caught.value.problems)
    assert "payers/medicare.yaml:3: policy key 'same_drug_min_interval_minutes' has the wrong type" in text
    assert "payers/medicare.yaml:4: unknown policy key 'allow_96376'" in text


def test_a_site_payer_file_overlays_settings_key_by_key(tmp_path: Path) -> None:
    site(tmp_path / "payers", "medicare", "settings:\n  separate_encounter_modifier: XE\n")
    payer = load_policy(tmp_path).payer("Medicare")
    assert payer.separate_encounter_modifier == "XE"
    assert payer.second_site_modifier == "XS"
    assert payer.same_drug_min_interval_minutes == 30


def test_an_mue_value_without_its_cms_source_is_refused(tmp_path: Path) -> None:
    site(tmp_path / "payers", "default", "settings:\n  mue:\n    - {code: '96376', facility_units: 4}\n")
    with pytest.raises(MappingError) as caught:
        load_policy(tmp_path)
    assert "quarterly CMS file" in caught.value.problems[0]


def test_a_missing_site_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError):
        load_policy(tmp_path / "nope")


def test_a_chargemaster_item_revenue_code_that_is_not_4_digits_is_refused_at_load(tmp_path: Path) -> None:
    # A bad revenue code used to load and then make the ChargeItem renderer fail for every
    # encounter billing that item: refused here, naming the file and line.
    site(tmp_path, "chargemaster", "items:\n  - {code: '96374', charge_code: X1, revenue_code: '45'}\n")
    with pytest.raises(MappingError) as caught:
        load_policy(tmp_path)
    assert any(
        p.startswith(f"{tmp_path}/chargemaster.yaml:3: revenue_code must be 4 digits") for p in caught.value.problems
    ), caught.value.problems


def test_the_line_loader_reads_every_shipped_file_as_pure_python_yaml_does_lines_included() -> None:
    class PurePython(yaml.SafeLoader):
        """The reference: PyYAML's own parser, with the same mapping constructor."""

    PurePython.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, yamlfile._mapping_with_line)
    files = sorted(shipped_dir("mappings", "mappings").rglob("*.yaml"))
    assert len(files) > 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=yamlfile._LineLoader) == yaml.load(text, Loader=PurePython), path


def test_a_yaml_error_names_the_line_whichever_parser_reads_it(tmp_path: Path) -> None:
    bad_indent = "routes:\n  - code: IV\n   bad: indent\n  - code: IM\n"
    (tmp_path / "routes.yaml").write_text(META + bad_indent, encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_policy(tmp_path)
    assert any(p.startswith(("routes.yaml:4:", f"{tmp_path}/routes.yaml:4:")) for p in caught.value.problems), (
        caught.value.problems
    )


@pytest.mark.parametrize("body", ["routes:\n  - code: IV\t\n", "routes: [IV,\tIM]\n", "routes:\n  - text: iv\tpush\n"])
def test_a_tab_anywhere_is_refused_with_its_line_whichever_yaml_parser_would_take_it(tmp_path: Path, body: str) -> None:
    (tmp_path / "routes.yaml").write_text(META + body, encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_policy(tmp_path)
    line = 1 + (META + body)[: (META + body).index("\t")].count("\n")
    assert caught.value.problems == [f"{tmp_path}/routes.yaml:{line}: a tab character: indent and separate with spaces"]


def test_a_file_that_is_not_utf8_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_bytes(META.encode() + "texts: [intraveineuse \xe9]\n".encode("latin-1"))
    with pytest.raises(MappingError) as caught:
        load_policy(tmp_path)
    assert caught.value.problems == [f"{tmp_path}/routes.yaml:1: not UTF-8 text"]
