"""Small HL7 v2 messages for the adapter tests: a header, the segments given, CR terminators."""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

from connector.adapters.hl7v2 import parse_hl7
from connector.model import ParsedRecord
from connector.policy.model import Policy
from connector.policy.site import SiteProfile

NEW_YORK = ZoneInfo("America/New_York")
PID = "PID|1||MRN0001^^^GENHOSP^MR||TEST^PATIENT||19800101|F"
ORC = "ORC|RE|ORD100^EPC|FIL100^EPC"
RXR = "RXR|IV^Intravenous^HL70162|||IVP^IV Push^HL70165"


def rxa(start: str = "20260302101500", notes: str = "", rate: str = "") -> str:
    """An ondansetron push given at ``start`` (RXA-9 notes and RXA-12 rate as given)."""
    return f"RXA|0|1|{start}||313002^ondansetron 2 MG/ML^RXNORM|4|mg||{notes}|||{rate}||||||||CP"


def pv1(*, visit: str = "", alternate: str = "", location: str = "ED^B12^01^GENHOSP", cls: str = "E") -> str:
    """A PV1 with PV1-2 class, PV1-3 location, PV1-19 visit number and PV1-50 alternate visit id."""
    fields = ["PV1", "1", cls, location] + [""] * 47
    fields[19], fields[50] = visit, alternate
    return "|".join(fields).rstrip("|")


def pid(account: str = "", patient: str = "MRN0001^^^GENHOSP^MR") -> str:
    """A PID with PID-3 patient id and PID-18 account number."""
    fields = ["PID", "1", "", patient, "", "TEST^PATIENT", "", "19800101", "F"] + [""] * 10
    fields[18] = account
    return "|".join(fields).rstrip("|")


def pv1_times(base: str, admitted: str = "", discharged: str = "") -> str:
    """``base`` (a PV1) with PV1-44 admit and PV1-45 discharge times."""
    fields = base.split("|")
    fields += [""] * (46 - len(fields))
    fields[44], fields[45] = admitted, discharged
    return "|".join(fields).rstrip("|")


def message(
    *segments: str,
    kind: str = "RAS^O17^RAS_O17",
    facility: str = "GENHOSP",
    sent: str = "20260302101500",
    control: str = "C1",
) -> bytes:
    """MSH then ``segments``, joined by CR."""
    header = f"MSH|^~\\&|EPIC|{facility}|IVPUSH|GENHOSP|{sent}||{kind}|{control}|P|2.5.1"
    return "\r".join((header, *segments)).encode("utf-8")


def adt(trigger: str, *segments: str, event: str = "20260302160000", **kwargs: str) -> bytes:
    """An ADT^``trigger`` with an EVN-2 event time, then ``segments``."""
    return message(f"EVN|{trigger}|{event}", *segments, kind=f"ADT^{trigger}^ADT_A01", **kwargs)


def with_site(policy: Policy, **settings: object) -> Policy:
    """``policy`` with a site profile built from ``settings`` (SiteProfile fields)."""
    return replace(policy, site=SiteProfile(**settings))  # type: ignore[arg-type]


def parse(raw: bytes, policy: Policy) -> ParsedRecord:
    """``parse_hl7`` with New York as the default zone."""
    return parse_hl7(raw, policy, NEW_YORK)
