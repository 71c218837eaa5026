"""The demo's printout: net charge lines per encounter, then the administrations without a line and why."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from connector.cli.demo_table import Notes, coverage, read_notes, table, uncharged_row
from connector.model import CodedValue, Encounter, PatientClass
from connector.model.administration import Administration, SourceRef
from connector.model.events import EncounterRef
from connector.model.outcomes import AdministrationOutcome, OutcomeKind, Unmapped
from connector.policy.model import Policy
from connector.store.base import EncounterState
from connector.store.memory import MemoryStore

ZONE = timezone(timedelta(hours=-5))
SOURCE = SourceRef("hl7v2", "ED004", "byte 0", "feed.hl7")


def message(key_id: str, lines: list[dict[str, object]], claim: str = "facility", policy: str = "bcbs") -> bytes:
    enc = {"id": key_id, "assigning_authority": "GENHOSP", "patient_class": "emergency"}
    return json.dumps({"encounter": enc, "claim_type": claim, "policy": policy, "lines": lines}).encode()


MUE = ("no_mue_on_file",)


def line(line_id: str, code: str, action: str = "charge", flags: tuple[str, ...] = MUE) -> dict[str, object]:
    return {
        "line_id": line_id,
        "action": action,
        "code": code,
        "units": 1,
        "modifiers": [],
        "service_date": "2026-03-02",
        "revenue_code": "0450",
        "charge_code": f"IVP{code}",
        "reason": f"reason of {code}",
        "flags": list(flags),
    }


def admin(admin_id: str, text: str, hour: int) -> Administration:
    return Administration(admin_id, "GENHOSP|V1", CodedValue(text=text), datetime(2026, 3, 2, hour, 5, tzinfo=ZONE))


def test_lines_net_of_credits_with_flags_but_not_the_flag_every_line_carries() -> None:
    feed = b"\n".join(
        [
            message("V1", [line("ln-1", "96374"), line("ln-2", "96376")]),
            message("V1", [line("ln-2", "96376", "credit"), line("ln-3", "96375", flags=("write_off", *MUE))]),
        ]
    )
    text = table(feed)
    rows = [row.split()[1] for row in text.splitlines() if row.startswith("  2026")]
    assert rows == ["96374", "96375"]
    assert "Encounter V1 — emergency, facility claim, payer bcbs" in text
    assert any("IVP96375   write_off  reason of 96375" in row for row in text.splitlines())
    assert "  flags      reason" in text and "no_mue_on_file," not in text
    assert text.endswith("Not shown per line: no_mue_on_file (every line carries it until a site adds MUE values).")
    assert "write_off: the payer does not reimburse these codes on this claim type in place of service ?" in text


def test_notes_follow_the_lines_and_an_encounter_without_messages_still_shows() -> None:
    notes = {
        "GENHOSP|V1": Notes("V1 — emergency", "23", "primary coverage sent: X → bcbs (m:1)", ("row one",), 4),
        "GENHOSP|V2": Notes("V2 — outpatient", "22", "", ("row two", "row three"), 2),
    }
    text = table(message("V1", [line("ln-1", "96374", flags=("write_off",))]), notes)
    first, second = text.split("Encounter V2")
    assert first.splitlines()[:2] == [
        "Encounter V1 — emergency, facility claim, payer bcbs, place of service 23",
        "  primary coverage sent: X → bcbs (m:1)",
    ]
    assert "in place of service 23 (coding-rules.md §7)" in first
    assert first.index("IVP96374") < first.index("  no line, or to review (1 of 4 administrations):\n    row one")
    assert second.startswith(" — outpatient, no charge message, place of service 22\n")
    assert "(2 of 2 administrations):\n    row two\n    row three" in second
    assert "Not shown per line" not in text  # no line carries it


def test_an_uncharged_row_names_time_drug_source_outcome_and_the_code_to_map(policy: Policy) -> None:
    outcome = AdministrationOutcome(
        "a1",
        OutcomeKind.NEEDS_REVIEW,
        "unmapped_route",
        "Route not mapped: IV slow push.",
        source=SOURCE,
        unmapped=(Unmapped("route", "99GH", "IVSLOW", "RXR-1"), Unmapped("method", "", "slowly", "RXR-4/RXR-3")),
    )
    row = uncharged_row(outcome, admin("a1", "Ondansetron 4 mg", 7), policy)
    assert row.startswith("2026-03-02 07:05-05:00  ondansetron       ED004     needs review: unmapped_route — ")
    assert row.endswith(
        "Route not mapped: IV slow push. Not in the route mappings: 99GH|IVSLOW (RXR-1). "
        'Not in the method mappings: "slowly" (RXR-4/RXR-3).'
    )
    coded = AdministrationOutcome("a2", OutcomeKind.NEEDS_REVIEW, "initial_choice", "push → 96374.", ("96374",), SOURCE)
    assert "needs review (96374): initial_choice — push → 96374." in uncharged_row(coded, None, policy)
    no_line = AdministrationOutcome("a3", OutcomeKind.NO_LINE, "not_given", "Not given: status deleted.", source=SOURCE)
    assert uncharged_row(no_line, None, policy).startswith("?  ?                 ED004     no line: not_given — ")


def test_the_coverage_names_what_was_sent_and_the_payer_map_entry_it_matched(policy: Policy) -> None:
    base = Encounter("GENHOSP|V1", administrations=(admin("a1", "ondansetron", 7),))
    assert coverage(base, "default", policy) == ""
    mapped = coverage(Encounter(**{**_fields(base), "payer_ids": ("GHMC01", "MEDICARE PART B")}), "medicare", policy)
    assert mapped.startswith("primary coverage sent: GHMC01, MEDICARE PART B → medicare (mappings/payer_map.yaml:")
    unknown = coverage(Encounter(**{**_fields(base), "payer_ids": ("ACME HEALTH",)}), "default", policy)
    assert unknown == "primary coverage sent: ACME HEALTH → not in the payer map: policy default, lines need review"


def test_notes_are_read_from_the_stored_outcomes_and_encounter(policy: Policy) -> None:
    store = MemoryStore()
    encounter = Encounter(
        "GENHOSP|V1",
        patient_class=PatientClass.EMERGENCY,
        payer_ids=("BCBS",),
        administrations=(admin("a1", "ondansetron", 7), admin("a2", "morphine", 8)),
    )
    with store.transaction() as tx:
        tx.put(EncounterState(EncounterRef("GENHOSP|V1", "V1", "GENHOSP"), encounter, 0.0))
        tx.put_outcomes(
            "GENHOSP|V1",
            [
                AdministrationOutcome("a1", OutcomeKind.CODED, "coded", "push → 96374.", ("96374",), SOURCE),
                AdministrationOutcome("a2", OutcomeKind.NO_LINE, "not_given", "Not given: status deleted.", (), SOURCE),
            ],
        )
    notes = read_notes(store, policy)
    store.close()
    assert list(notes) == ["GENHOSP|V1"]
    note = notes["GENHOSP|V1"]
    assert (note.head, note.place_of_service, note.administrations) == ("V1 — emergency", "23", 2)
    assert note.coverage.startswith("primary coverage sent: BCBS → bcbs (mappings/payer_map.yaml:")
    assert len(note.uncharged) == 1 and "morphine" in note.uncharged[0] and "no line: not_given" in note.uncharged[0]


def _fields(encounter: Encounter) -> dict[str, object]:
    return {name: getattr(encounter, name) for name in encounter.__slots__}
