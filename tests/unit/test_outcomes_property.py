"""Every input accounted for: over synthetic feeds, administrations in = outcomes stored (issue #13)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.adapters.fhir import parse_fhir
from connector.adapters.hl7v2 import parse_hl7
from connector.emitters import json_charge
from connector.model import OutcomeKind, ParsedRecord
from connector.policy.model import Policy
from connector.service import Service, ServiceSettings
from connector.store.memory import MemoryStore
from connector.synth.render import records

ZONE = ZoneInfo("America/New_York")


def parsed(fmt: str, seed: int, policy: Policy) -> list[ParsedRecord]:
    found: list[ParsedRecord] = []
    for raw in records(fmt, seed, encounters=6):
        found.extend([parse_hl7(raw, policy, ZONE)] if fmt == "hl7" else parse_fhir(raw, policy, local_zone=ZONE))
    return found


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), fmt=st.sampled_from(["hl7", "fhir"]), batch=st.integers(1, 40))
def test_every_accepted_administration_ends_with_one_stored_outcome(
    policy: Policy, seed: int, fmt: str, batch: int
) -> None:
    inputs = parsed(fmt, seed, policy)
    store = MemoryStore()
    service = Service(store, policy, ServiceSettings({"json": json_charge.render}), clock=lambda: 1000.0)
    for start in range(0, len(inputs), batch):
        assert service.handle(inputs[start : start + batch]).rejected == {}
    assert service.close().failed == {}
    sent = {(a.encounter_key, a.id) for record in inputs for a in record.administrations}
    with store.transaction() as tx:
        stored = [(key, outcome) for key, outcome in tx.scan_outcomes()]
    assert sorted((key, o.administration_id) for key, o in stored) == sorted(sent)
    for _, outcome in stored:
        assert outcome.reason
        assert outcome.detail
        assert (outcome.outcome is OutcomeKind.CODED) == (outcome.reason == "coded")
        if outcome.outcome is OutcomeKind.CODED:
            assert outcome.codes
        if outcome.outcome is OutcomeKind.NO_LINE:
            assert not outcome.codes
