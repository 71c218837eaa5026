"""Drug mappings: every entry sourced; the agents payers code as chemotherapy administration are chemo."""

from __future__ import annotations

import pytest

from connector.model import CodedValue, Coding
from connector.policy.drugs import BillingClass
from connector.policy.model import Policy

CHEMO_SOURCES = ("CMS Pub 100-04 ch.12 §30.5", "CPT chemotherapy administration", "LCD")


def test_every_drug_entry_has_a_source(policy: Policy) -> None:
    missing = [e.ingredient for e in policy.drugs.entries.values() if not e.reference.strip()]
    assert not missing


def test_every_chemo_entry_cites_the_chemotherapy_administration_guidance(policy: Policy) -> None:
    chemo = [e for e in policy.drugs.entries.values() if e.billing_class is BillingClass.CHEMO]
    uncited = [e.ingredient for e in chemo if not any(s in e.reference for s in CHEMO_SOURCES)]
    assert len(chemo) >= 100 and not uncited


def test_an_entry_without_an_rxcui_says_it_resolves_by_name_only(policy: Policy) -> None:
    chemo = [e for e in policy.drugs.entries.values() if e.billing_class is BillingClass.CHEMO]
    unsaid = [e.ingredient for e in chemo if e.rxcui is None and "matched by name" not in e.reference]
    coded = [e.ingredient for e in chemo if e.rxcui and f"RxNorm IN {e.rxcui}" not in e.reference]
    assert not unsaid and not coded


@pytest.mark.parametrize(
    "text",
    [
        "Brentuximab vedotin 1.8 mg/kg in NS 100 mL",
        "Adcetris 50 mg",
        "alemtuzumab 30 mg IV",
        "Campath 30 mg",
        "riTUXimab-abbs (Truxima) 375 mg/m2",
        "trastuzumab-anns (Kanjinti) 6 mg/kg",
        "Bevacizumab 5 mg/kg",
        "Keytruda 200 mg",
        "nivolumab 240 mg",
        "Cetuximab 250 mg/m2",
        "daratumumab 16 mg/kg",
        "Gazyva 1000 mg",
        "atezolizumab 1200 mg",
        "Yervoy 3 mg/kg",
        "inFLIXimab-dyyb (Inflectra) 5 mg/kg",
        "Blincyto 28 mcg/day",
        "Cabazitaxel 20 mg/m2",
        "eribulin mesylate 1.4 mg/m2",
        "busulfan 0.8 mg/kg",
        "Oncaspar 2500 units/m2",
        "Mitomycin C 10 mg",
    ],
)
def test_the_antineoplastics_and_biologic_response_modifiers_are_chemo_by_name(policy: Policy, text: str) -> None:
    identity = policy.drugs.resolve(CodedValue(text=text))
    assert identity.mapped and identity.billing_class is BillingClass.CHEMO, identity


@pytest.mark.parametrize(
    ("rxcui", "ingredient"),
    [
        ("1147320", "brentuximab vedotin"),
        ("117055", "alemtuzumab"),
        ("974779", "obinutuzumab"),
        ("1721947", "daratumumab"),
        ("121191", "rituximab"),
        ("2105824", "rituximab"),  # rituximab-abbs (a biosimilar's own RxNorm concept)
        ("191831", "infliximab"),
    ],
)
def test_rxnorm_codes_resolve_to_their_ingredient(policy: Policy, rxcui: str, ingredient: str) -> None:
    identity = policy.drugs.resolve(CodedValue((Coding("http://www.nlm.nih.gov/research/umls/rxnorm", rxcui),)))
    assert identity.key == ingredient and identity.billing_class is BillingClass.CHEMO


def test_supportive_drugs_given_with_chemotherapy_are_not_chemo(policy: Policy) -> None:
    for text in ("Ondansetron 8 mg", "Leucovorin 400 mg/m2", "Zoledronic acid 4 mg", "Filgrastim 480 mcg"):
        assert policy.drugs.resolve(CodedValue(text=text)).billing_class is BillingClass.THERAPEUTIC, text
