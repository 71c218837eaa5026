"""The payer map and the place-of-service table: lookups by date, overlays, ``file:line`` errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from policy_support import assert_problem_at, write

from connector.model import PatientClass
from connector.policy.loader import load_policy
from connector.policy.model import Policy

DAY = date(2026, 3, 2)


@pytest.mark.parametrize(
    ("sent", "payer"),
    [
        ("MEDICARE", "medicare"),
        ("Medicare Part B", "medicare"),
        ("blue cross  blue shield", "bcbs"),
        ("BCBS", "bcbs"),
        (" UnitedHealthcare ", "uhc"),
        ("UHC", "uhc"),
        ("Aetna", "aetna"),
        ("CIGNA", "cigna"),
        ("SELF PAY", "default"),
    ],
)
def test_the_shipped_map_knows_the_national_payer_names(policy: Policy, sent: str, payer: str) -> None:
    found = policy.payer_map.payer_for([sent], DAY)
    assert found is not None and found[0] == payer
    assert found[1].startswith("mappings/payer_map.yaml:")


def test_every_shipped_payer_map_entry_names_a_payer_policy_and_a_source(policy: Policy) -> None:
    entries = [e for group in policy.payer_map.entries.values() for e in group]
    assert entries and all(e.payer in policy.payers and e.reference for e in entries)
    assert {e.payer for e in entries} >= {"medicare", "bcbs", "uhc", "aetna", "cigna"}


def test_the_first_mapped_identifier_in_the_order_given_wins(policy: Policy) -> None:
    assert policy.payer_map.payer_for(["PLAN-77", "AETNA", "CIGNA"], DAY) == (
        "aetna",
        policy.payer_map.entries["AETNA"][0].origin,
    )
    assert policy.payer_map.payer_for(["PLAN-77", "ACME HEALTH"], DAY) is None
    assert policy.payer_map.payer_for([], DAY) is None


def test_a_site_maps_its_company_ids_by_date_and_replaces_a_shipped_entry(tmp_path: Path) -> None:
    write(
        tmp_path,
        "payer_map",
        "entries:\n"
        '  - {id: "BC001", payer: bcbs, effective_to: 2025-12-31, reference: "contract 2025"}\n'
        '  - {id: "bc001", payer: uhc, effective_from: 2026-01-01, reference: "contract 2026"}\n'
        '  - {id: "AETNA", payer: default, reference: "site: no Aetna contract rules"}\n',
    )
    payer_map = load_policy(tmp_path).payer_map
    assert payer_map.payer_for(["BC001"], date(2025, 12, 31)) == ("bcbs", f"{tmp_path}/payer_map.yaml:3")
    assert payer_map.payer_for([" bc001 "], date(2026, 1, 1)) == ("uhc", f"{tmp_path}/payer_map.yaml:4")
    assert payer_map.payer_for(["BC001"], date(2019, 12, 31)) is None  # before the file's effective_from
    assert payer_map.payer_for(["AETNA"], DAY) == ("default", f"{tmp_path}/payer_map.yaml:5")
    assert payer_map.payer_for(["CIGNA"], DAY) is not None  # the shipped entries stay


def test_a_later_id_is_used_when_the_first_has_no_entry_in_force_that_day(tmp_path: Path) -> None:
    write(
        tmp_path,
        "payer_map",
        'entries:\n  - {id: "P1", payer: cigna, effective_to: 2026-01-31}\n  - {id: "P2", payer: uhc}\n',
    )
    payer_map = load_policy(tmp_path).payer_map
    assert payer_map.payer_for(["P1", "P2"], date(2026, 1, 31))[0] == "cigna"  # type: ignore[index]
    assert payer_map.payer_for(["P1", "P2"], date(2026, 2, 1))[0] == "uhc"  # type: ignore[index]


@pytest.mark.parametrize(
    ("rows", "line", "message"),
    [
        ('  - {id: "X1", payer: humana}\n', 3, "payer 'humana' is not a payer policy"),
        ("  - {id: 00123, payer: uhc}\n", 3, "must be quoted text"),
        ("  - {payer: uhc}\n", 3, "id is required"),
        ('  - {id: "X1", payer: uhc, effective_from: soon}\n', 3, "must be dates"),
        ('  - {id: "X1", payer: uhc, effective_from: 2026-02-01, effective_to: 2026-01-01}\n', 3, "before"),
        ('  - {id: "X1", payer: uhc, efective_to: 2026-01-01}\n', 3, "unknown key 'efective_to'"),
        (
            '  - {id: "X1", payer: uhc, effective_to: 2026-06-30}\n'
            '  - {id: "x1", payer: bcbs, effective_from: 2026-06-01}\n',
            4,
            "id 'X1' overlaps the dates of the entry at {site}/payer_map.yaml:3",
        ),
    ],
)
def test_payer_map_problems_name_the_file_and_line(tmp_path: Path, rows: str, line: int, message: str) -> None:
    write(tmp_path, "payer_map", "entries:\n" + rows)
    assert_problem_at(tmp_path, "payer_map", line, message)


def test_entries_of_one_id_that_do_not_overlap_are_fine(tmp_path: Path) -> None:
    write(
        tmp_path,
        "payer_map",
        'entries:\n  - {id: "X1", payer: uhc, effective_to: 2026-05-31}\n'
        '  - {id: "X1", payer: bcbs, effective_from: 2026-06-01}\n',
    )
    assert load_policy(tmp_path).payer_map.payer_for(["X1"], date(2026, 6, 1))[0] == "bcbs"  # type: ignore[index]


@pytest.mark.parametrize(
    ("patient_class", "location", "pos"),
    [
        (PatientClass.EMERGENCY, "", "23"),
        (PatientClass.EMERGENCY, "ED BED 4", "23"),
        (PatientClass.OUTPATIENT, "", "22"),
        (PatientClass.OBSERVATION, "OBS", "22"),
        (PatientClass.INPATIENT, "", "21"),
    ],
)
def test_the_shipped_table_gives_each_hospital_class_its_cms_place_of_service(
    policy: Policy, patient_class: PatientClass, location: str, pos: str
) -> None:
    found = policy.places.place_of_service(patient_class, location, DAY)
    assert found is not None and found[0] == pos
    assert found[1].startswith("mappings/places_of_service.yaml:")


def test_classes_without_a_default_get_no_place_of_service(policy: Policy) -> None:
    assert policy.places.place_of_service(PatientClass.UNKNOWN, "", DAY) is None
    assert policy.places.place_of_service(PatientClass.OTHER, "CLINIC", DAY) is None


def test_a_site_location_wins_over_the_class_default(tmp_path: Path) -> None:
    write(
        tmp_path,
        "places_of_service",
        "entries:\n"
        '  - {class: outpatient, location: onc-north, pos: "19", reference: "off campus"}\n'
        '  - {class: outpatient, location: "DR SMITH", pos: 11, effective_from: 2026-03-01, reference: "office"}\n'
        '  - {class: emergency, location: "", pos: "23", reference: "same as shipped"}\n',
    )
    places = load_policy(tmp_path).places
    assert places.place_of_service(PatientClass.OUTPATIENT, "ONC-NORTH", DAY) == (
        "19",
        f"{tmp_path}/places_of_service.yaml:3",
    )
    assert places.place_of_service(PatientClass.OUTPATIENT, "dr  smith", DAY) == (
        "11",
        f"{tmp_path}/places_of_service.yaml:4",
    )
    assert places.place_of_service(PatientClass.OUTPATIENT, "DR SMITH", date(2026, 2, 28))[0] == "22"  # type: ignore[index]
    assert places.place_of_service(PatientClass.OBSERVATION, "ONC-NORTH", DAY)[0] == "22"  # type: ignore[index]
    assert places.place_of_service(PatientClass.EMERGENCY, "", DAY) == (
        "23",
        f"{tmp_path}/places_of_service.yaml:5",
    )


@pytest.mark.parametrize(
    ("rows", "line", "message"),
    [
        ('  - {class: clinic, pos: "11"}\n', 3, "class 'clinic' is not one of"),
        ("  - {class: outpatient, location: ONC, pos: 1234}\n", 3, "pos must be a two-digit CMS"),
        ('  - {class: outpatient, location: ONC, pos: "2"}\n', 3, "pos must be a two-digit CMS"),
        ('  - {class: outpatient, location: 12, pos: "19"}\n', 3, "location must be quoted text"),
        ('  - {class: outpatient, place: ONC, pos: "19"}\n', 3, "unknown key 'place'"),
        (
            '  - {class: outpatient, location: ONC, pos: "19"}\n  - {class: outpatient, location: onc, pos: "11"}\n',
            4,
            "class outpatient, location 'ONC' overlaps the dates of the entry at {site}/places_of_service.yaml:3",
        ),
        (
            '  - {class: inpatient, pos: "21"}\n  - {class: inpatient, location: "", pos: "21"}\n',
            4,
            "class inpatient default overlaps",
        ),
    ],
)
def test_place_table_problems_name_the_file_and_line(tmp_path: Path, rows: str, line: int, message: str) -> None:
    write(tmp_path, "places_of_service", "entries:\n" + rows)
    assert_problem_at(tmp_path, "places_of_service", line, message)
