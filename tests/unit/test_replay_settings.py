"""The coding settings a state records, and the check that refuses a run under other ones."""

import pytest

from connector.cli.replay_settings import CodingSettings, SettingsChanged, check, differences, recorded, remember
from connector.store.memory import MemoryStore

CHICAGO = CodingSettings("America/Chicago", "facility", "default", "a" * 64)


def test_a_new_state_has_nothing_to_say_and_records_the_settings_once_run() -> None:
    store = MemoryStore()
    assert check(store, CHICAGO, recode=False, fresh=True) == ""
    remember(store, CHICAGO)
    with store.transaction() as tx:
        assert recorded(tx) == CHICAGO
    assert check(store, CHICAGO, recode=False, fresh=False) == ""


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"zone": "UTC"}, "state was coded with zone America/Chicago, this run uses UTC"),
        ({"claim_type": "professional"}, "state was coded with claim type facility, this run uses professional"),
        ({"policy": "bcbs"}, "state was coded with default payer policy default, this run uses bcbs"),
        ({"mappings": "b" * 64}, "state was coded with mappings aaaaaaaaaaaa, this run uses bbbbbbbbbbbb"),
        ({"zone": "UTC", "policy": "bcbs"}, "state was coded with zone America/Chicago, this run uses UTC"),
    ],
)
def test_other_settings_are_refused_naming_the_first_difference(changed: dict[str, str], message: str) -> None:
    store = MemoryStore()
    remember(store, CHICAGO)
    other = CodingSettings(**{**CHICAGO.__dict__, **changed})
    with pytest.raises(SettingsChanged) as refused:
        check(store, other, recode=False, fresh=False)
    assert str(refused.value) == f"{message}; pass --recode to recode under the new settings"


def test_recode_says_what_changed_and_nothing_is_recorded_by_the_check() -> None:
    store = MemoryStore()
    remember(store, CHICAGO)
    utc = CodingSettings("UTC", "facility", "bcbs", CHICAGO.mappings)
    note = check(store, utc, recode=True, fresh=False)
    assert note == "recoded under new settings: zone UTC (was America/Chicago), default payer policy bcbs (was default)"
    with store.transaction() as tx:
        assert recorded(tx) == CHICAGO


def test_a_state_without_a_record_is_not_refused_and_the_note_says_what_is_recorded() -> None:
    note = check(MemoryStore(), CHICAGO, recode=False, fresh=False)
    assert note == (
        "the state held no record of the settings it was coded under (older state); recorded: zone "
        "America/Chicago, claim type facility, default payer policy default, mappings aaaaaaaaaaaa"
    )


def test_a_partial_record_reads_missing_settings_as_none() -> None:
    store = MemoryStore()
    with store.transaction() as tx:
        tx.set_meta("coding.zone", "UTC")
        old = recorded(tx)
    assert old is not None
    assert differences(old, CHICAGO)[0] == ("zone", "UTC", "America/Chicago")
    assert ("claim type", "none", "facility") in differences(old, CHICAGO)
