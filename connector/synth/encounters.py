"""Synthetic encounters (the model, no feed) for rule tests and benchmarks: deterministic by seed.

ED and observation encounters with 1–40 administrations each: pushes (often repeated drugs),
piggyback infusions, hydration, chemotherapy in some infusion-suite visits, IM injections,
not-given records and corrections. Same seed → same encounters, byte for byte.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from connector.model import Administration, AdminStatus, ClaimType, CodedValue, Coding, Encounter, PatientClass

ZONE = timezone(timedelta(hours=-5))
PUSH_DRUGS = (
    "Ondansetron 4 mg/2 mL injection",
    "Zofran 4 mg IV",
    "Morphine 4 mg/mL inj",
    "HYDROmorphone 1 mg/mL inj",
    "Ketorolac 15 mg/mL inj",
    "Famotidine 20 mg/2 mL inj",
    "Metoclopramide 10 mg/2 mL inj",
    "Diphenhydramine 25 mg inj",
    "LORazepam 2 mg/mL inj",
    "Furosemide 40 mg/4 mL inj",
)
INFUSION_DRUGS = (
    "cefTRIAXone 1 g in NS 50 mL IVPB",
    "Vancomycin 1 g in NS 250 mL",
    "Pantoprazole 80 mg in NS 100 mL",
    "Magnesium sulfate 2 g/50 mL",
    "Levetiracetam 1,000 mg in NS 100 mL",
)
CHEMO_DRUGS = ("Cyclophosphamide 1,000 mg in NS 250 mL", "PACLitaxel 175 mg/m2 in NS 500 mL", "Oxaliplatin 85 mg/m2")
FLUIDS = ("Sodium chloride 0.9% 1000 mL", "Lactated Ringer's 1000 mL")
IV = CodedValue((Coding("HL70162", "IV"),))
IM = CodedValue((Coding("HL70162", "IM"),))
PUSH = CodedValue((Coding("HL70165", "IVP"),))


def encounter(rng: random.Random, key: str, size: int | None = None) -> Encounter:
    """One synthetic encounter with ``size`` administrations (random 1–40 when None)."""
    count = size if size is not None else rng.randint(1, 40)
    observation = rng.random() < 0.3
    suite = not observation and rng.random() < 0.15
    start = datetime(2026, 3, 1, 6, 0, tzinfo=ZONE) + timedelta(minutes=rng.randint(0, 60 * 24 * 20))
    span = 60 * (40 if observation else 8)
    admins = [_administration(rng, key, index, start, span, suite) for index in range(count)]
    return Encounter(
        key=key,
        patient_class=PatientClass.OBSERVATION if observation else PatientClass.EMERGENCY,
        claim_type=ClaimType.FACILITY,
        payer=rng.choice(("default", "medicare", "bcbs", "uhc")),
    ).with_administrations(admins)


def _administration(
    rng: random.Random, key: str, index: int, visit_start: datetime, span: int, suite: bool
) -> Administration:
    at = visit_start + timedelta(minutes=rng.randint(0, span))
    roll = rng.random()
    end: datetime | None = None
    method, route = CodedValue(), IV
    if roll < 0.55:
        drug, method = rng.choice(PUSH_DRUGS), PUSH
    elif roll < 0.75:
        drug = rng.choice(CHEMO_DRUGS if suite else INFUSION_DRUGS)
        end = at + timedelta(minutes=rng.choice((20, 30, 45, 60, 90, 91, 120, 180)))
    elif roll < 0.9:
        drug = rng.choice(FLUIDS)
        end = at + timedelta(minutes=rng.choice((20, 30, 31, 60, 120, 240)))
    else:
        drug, route = "Ketorolac 30 mg/mL", IM
    status = AdminStatus.NOT_GIVEN if rng.random() < 0.05 else AdminStatus.GIVEN
    return Administration(
        id=f"{key}-a{index}",
        encounter_key=key,
        drug=CodedValue(text=drug),
        start=at,
        end=end,
        route=route,
        method=method,
        status=status,
        version="1",
    )


def encounters(seed: int, count: int, size: int | None = None) -> list[Encounter]:
    """``count`` encounters from ``seed``."""
    rng = random.Random(seed)  # noqa: S311 - deterministic test data, not security
    return [encounter(rng, f"SYN-{seed}-{n}", size) for n in range(count)]
