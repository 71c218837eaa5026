from pathlib import Path

import pytest

from connector.model import CodedValue, Coding
from connector.policy.drugs import BillingClass
from connector.policy.loader import load_policy
from connector.policy.model import Policy
from connector.policy.yamlfile import MappingError


def key(policy: Policy, text: str = "", *codes: tuple[str, str]) -> str:
    return policy.drugs.resolve(CodedValue(tuple(Coding(s, c) for s, c in codes), text)).key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ondansetron 4 mg/2 mL injection", "ondansetron"),
        ("Zofran 8 mg IV", "ondansetron"),
        ("ondansetron HCl 2 mg/mL", "ondansetron"),
        ("HYDROmorphone 1 mg/mL inj", "hydromorphone"),
        ("cefTRIAXone 1 g IVPB", "ceftriaxone"),
        ("Cyclophosphamide 1,000 mg in NS 250 mL", "cyclophosphamide"),
        ("Potassium chloride 20 mEq in sodium chloride 0.9% 100 mL", "potassium chloride"),
        ("Sodium chloride 0.9% 1000 mL bolus", "sodium chloride"),
        ("Zosyn 3.375 g IVPB", "piperacillin+tazobactam"),
    ],
)
def test_identity_is_the_active_ingredient_whatever_the_strength_brand_or_vehicle(
    policy: Policy, text: str, expected: str
) -> None:
    assert key(policy, text) == expected


def test_a_mapped_code_wins_over_the_text(policy: Policy) -> None:
    assert key(policy, "Morphine 4 mg", ("http://www.nlm.nih.gov/research/umls/rxnorm", "26225")) == "ondansetron"


def test_an_unmapped_drug_falls_back_to_exact_code_or_text_equality(policy: Policy) -> None:
    coded = policy.drugs.resolve(CodedValue((Coding("LOCAL", "XR17"),), "Study drug XR-17 10 mg"))
    assert coded.key == "code:LOCAL|XR17" and not coded.mapped
    assert key(policy, "Study  drug XR-17") == key(policy, "study drug xr-17") == "text:study drug xr-17"


def test_billing_classes_drive_the_codes(policy: Policy) -> None:
    def billing(text: str) -> BillingClass:
        return policy.drugs.resolve(CodedValue(text=text)).billing_class

    assert billing("Iohexol 350 mg/mL (Omnipaque)") is BillingClass.CONTRAST
    assert billing("Lactated Ringer's 1000 mL") is BillingClass.HYDRATION
    assert billing("PACLitaxel 175 mg/m2") is BillingClass.CHEMO
    assert billing("Magnesium sulfate 2 g/50 mL") is BillingClass.THERAPEUTIC


def test_the_shipped_list_covers_at_least_150_ingredients_with_references(policy: Policy) -> None:
    entries = policy.drugs.entries.values()
    assert len(entries) >= 150
    assert all(entry.reference for entry in entries)
    assert {e.billing_class for e in entries} == set(BillingClass)


def test_a_site_adds_local_formulary_codes_to_an_ingredient(tmp_path: Path) -> None:
    (tmp_path / "drugs.yaml").write_text(
        "meta: {name: drugs, reviewed: 2026-11-26, reference: site formulary}\n"
        "local_codes:\n  - {system: ERX, code: '40840090', ingredient: ondansetron}\n"
    )
    policy = load_policy(tmp_path)
    assert key(policy, "", ("ERX", "40840090")) == "ondansetron"


def test_a_local_code_for_an_unknown_ingredient_is_an_error_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "drugs.yaml").write_text(
        "meta: {name: drugs, reviewed: 2026-11-26, reference: x}\n"
        "local_codes:\n  - {system: ERX, code: '1', ingredient: unobtainium}\n"
    )
    with pytest.raises(MappingError) as caught:
        load_policy(tmp_path)
    assert f"{tmp_path}/drugs.yaml:3: unknown ingredient 'unobtainium'" in caught.value.problems
