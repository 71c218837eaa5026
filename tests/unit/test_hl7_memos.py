"""The HL7 adapter's memos (segments, PID/PV1 identity, RXR route, RXA-6 dose) change no result.

Each memo is compared with the reading it stands for, on the shared samples, the public corpus
and small built messages: the same value whether remembered or not, a failure raised again on
every message, and no answer carried over to a site with another identity chain or to a
message with other delimiters (issue #15).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hl7_build import ORC, RXR, message, parse, pid, pv1, rxa, with_site

from connector.adapters.errors import AdapterError, BadIdentifier, MissingEncounterKey
from connector.adapters.hl7v2 import framing, identity, ras
from connector.adapters.hl7v2.framing import read_message
from connector.policy.model import Policy

SHARED = Path(__file__).resolve().parents[3] / "shared"
HL7_FOLDERS = (SHARED / "samples" / "hl7", SHARED / "public-corpus" / "hl7")
HL7_FILES = sorted(path for folder in HL7_FOLDERS for path in folder.glob("*.hl7") if path.is_file())


@pytest.fixture(autouse=True)
def _empty_memos() -> None:
    for cached in (framing._repeating_segment, identity._identity_of, ras._route_of_text, ras._number):
        cached.cache_clear()


def _messages() -> list[bytes]:
    """Every sample message (files may hold several, one MSH each, any terminator)."""
    out = []
    for path in HL7_FILES:
        data = path.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
        out += [b"MSH" + part for part in data.split(b"MSH")[1:] if part[:1] in b"|^~#!"]
    return out


@pytest.mark.skipif(not HL7_FILES, reason="no shared HL7 samples beside the repository")
def test_remembered_identity_and_route_equal_the_plain_reading_on_every_sample(policy: Policy) -> None:
    compared = 0
    for raw in _messages():
        try:
            message_ = read_message(raw)
        except AdapterError:
            continue
        pid_, pv1_ = message_.first("PID"), message_.first("PV1")
        facility = message_.msh.value(4)
        for _ in range(2):  # the second round is answered by the memo
            try:
                expected = (
                    identity.encounter_ref(pid_, pv1_, facility, policy.site, resolvable=True),
                    identity.account_number(pid_),
                )
            except AdapterError as error:
                with pytest.raises(type(error), match=re.escape(error.detail)):
                    identity.encounter_and_account(pid_, pv1_, facility, policy.site, resolvable=True)
            else:
                assert identity.encounter_and_account(pid_, pv1_, facility, policy.site, resolvable=True) == expected
        for rxr in message_.every("RXR"):
            assert ras._route(rxr) == ras._route_of(rxr) == ras._route(rxr)
            compared += 1
    assert compared  # the samples hold RAS messages with routes


def test_parsing_a_message_twice_gives_the_same_record(policy: Policy) -> None:
    for raw in _messages():
        try:
            first = parse(raw, policy)
        except AdapterError as error:
            with pytest.raises(type(error), match=re.escape(error.detail)):
                parse(raw, policy)
        else:
            assert parse(raw, policy) == first


def test_a_broken_visit_number_is_rejected_on_every_message(policy: Policy) -> None:
    raw = message(pid(), pv1(visit="V\x00100"), ORC, rxa(), RXR)
    for _ in range(2):
        with pytest.raises(BadIdentifier, match="PV1-19"):
            parse(raw, policy)


def test_the_identity_memo_does_not_carry_an_answer_to_another_chain(policy: Policy) -> None:
    raw = message(pid(account="ACC7"), pv1(visit="V100"), ORC, rxa(), RXR)
    assert parse(raw, policy).encounter_events[0].encounter.key == "GENHOSP|V100"
    by_account = with_site(policy, identity_chain=("PID-18",))
    assert parse(raw, by_account).encounter_events[0].encounter.key == "GENHOSP|ACC7"
    unkeyed = message(pid(), pv1(), ORC, rxa(), RXR)
    assert parse(unkeyed, policy).unresolved is not None
    with pytest.raises(MissingEncounterKey):
        parse(unkeyed, with_site(policy, identity_chain=("PV1-19",), fallback="reject"))


def test_the_segment_and_route_memos_keep_the_message_syntax_apart(policy: Policy) -> None:
    # The same RXR text means another route under other delimiters (here ``#`` is a component).
    plain = parse(message(pid(), pv1(visit="V1"), ORC, rxa(), "RXR|IV#PUSH^X"), policy).administrations[0]
    other = message(pid(), pv1(visit="V1"), ORC, rxa(), "RXR|IV#PUSH^X", kind="RAS#O17")
    other = other.replace(b"MSH|^~\\&", b"MSH|#~\\&", 1)
    hashed = parse(other, policy).administrations[0]
    assert plain.route.codings[0].code == "IV#PUSH"
    assert hashed.route.codings[0].code == "IV"


def test_doses_are_read_the_same_when_remembered(policy: Policy) -> None:
    for dose in ("4", "4.50", ".5", "+2", "1e3", "four", ""):
        given = rxa().replace("|4|mg|", f"|{dose}|mg|")
        first = parse(message(pid(), pv1(visit="V1"), ORC, given, RXR), policy).administrations[0].dose
        again = parse(message(pid(), pv1(visit="V1"), ORC, given, RXR, control="C2"), policy).administrations[0].dose
        assert first == again
        assert (first is None) == (dose in ("1e3", "four", ""))
