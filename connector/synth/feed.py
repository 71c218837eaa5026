"""The model of a synthetic feed: encounters with everything a feed carries, in sending order.

``feed_encounters`` draws encounters with orders, administration sub-ids, RxNorm codes,
charting times, corrections and discharge; ``timeline`` interleaves them into one stream in
charting-time order, as an interface engine would deliver them, holding only the encounters
still open. ``connector.synth.hl7`` and ``connector.synth.fhir`` turn the stream into bytes.
Same seed → same feed, byte for byte.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.synth.encounters import ZONE


@dataclass(frozen=True, slots=True)
class FormularyItem:
    """A drug as a MAR charts it: text, RxNorm ingredient code, usual dose, and kind."""

    text: str
    rxnorm: str
    dose: str
    unit: str
    kind: str  # push | infusion | chemo | hydration | im


FEED_PUSHES = (
    FormularyItem("Ondansetron 4 mg/2 mL injection", "26225", "4", "mg", "push"),
    FormularyItem("Zofran 4 mg IV", "", "4", "mg", "push"),
    FormularyItem("Morphine 4 mg/mL inj", "7052", "4", "mg", "push"),
    FormularyItem("HYDROmorphone 1 mg/mL inj", "3423", "1", "mg", "push"),
    FormularyItem("Ketorolac 15 mg/mL inj", "35827", "15", "mg", "push"),
    FormularyItem("Famotidine 20 mg/2 mL inj", "4278", "20", "mg", "push"),
    FormularyItem("Metoclopramide 10 mg/2 mL inj", "6915", "10", "mg", "push"),
    FormularyItem("Diphenhydramine 25 mg inj", "3498", "25", "mg", "push"),
    FormularyItem("LORazepam 2 mg/mL inj", "6470", "2", "mg", "push"),
    FormularyItem("Furosemide 40 mg/4 mL inj", "4603", "40", "mg", "push"),
)
FEED_INFUSIONS = (
    FormularyItem("cefTRIAXone 1 g in NS 50 mL IVPB", "2193", "1", "g", "infusion"),
    FormularyItem("Vancomycin 1 g in NS 250 mL", "11124", "1", "g", "infusion"),
    FormularyItem("Pantoprazole 80 mg in NS 100 mL", "40790", "80", "mg", "infusion"),
    FormularyItem("Magnesium sulfate 2 g/50 mL", "6585", "2", "g", "infusion"),
    FormularyItem("Levetiracetam 1,000 mg in NS 100 mL", "114477", "1000", "mg", "infusion"),
)
FEED_CHEMO = (
    FormularyItem("Cyclophosphamide 1,000 mg in NS 250 mL", "3002", "1000", "mg", "chemo"),
    FormularyItem("PACLitaxel 175 mg/m2 in NS 500 mL", "56946", "300", "mg", "chemo"),
    FormularyItem("Oxaliplatin 85 mg/m2", "32592", "150", "mg", "chemo"),
)
FEED_FLUIDS = (
    FormularyItem("Sodium chloride 0.9% 1000 mL", "9863", "1000", "mL", "hydration"),
    FormularyItem("Lactated Ringer's 1000 mL", "", "1000", "mL", "hydration"),
)
FEED_IM = FormularyItem("Ketorolac 30 mg/mL", "35827", "30", "mg", "im")
FACILITIES = (("GENHOSP", "epic"), ("NORTHMC", "cerner"))
_SURNAMES = ("GARCIA", "SMITH", "NGUYEN", "JOHNSON", "PATEL", "WILLIAMS", "KIM", "BROWN", "LOPEZ", "MILLER")
_GIVEN_NAMES = ("ALEX", "JORDAN", "TAYLOR", "MORGAN", "CASEY", "RILEY", "JAMIE", "AVERY", "QUINN", "SAM")
FEED_START = datetime(2026, 3, 1, 6, 0, tzinfo=ZONE)


@dataclass(frozen=True, slots=True)
class Correction:
    """A later charting action on an administration: ``D`` delete or ``U`` update.

    Attributes:
        action: ``D`` (HL7 RXA-21 D; FHIR entered-in-error) or ``U`` (RXA-21 U; a new version).
        recorded: When the correction was charted (a later MSH-7 / lastUpdated).
        end: The corrected stop time (updates of timed administrations), else as before.
        dose: The corrected dose (updates), else as before.
    """

    action: str
    recorded: datetime
    end: datetime | None
    dose: str


@dataclass(frozen=True, slots=True)
class FeedAdministration:
    """One administration as charted: order identity, drug, times, status and any correction.

    Attributes:
        order: Placer order number (ORC-2; FHIR ``request``), unique in the feed.
        sub_id: Administration sub-id within the order (RXA-2): repeated pushes of one order.
        item: The drug charted.
        start: When it started (RXA-3).
        end: When it stopped, for timed administrations (RXA-4).
        given: False for a not-given record (RXA-20 NA; FHIR not-done).
        recorded: When it was charted (MSH-7, RXA-22; FHIR lastUpdated).
        correction: A later delete or update, if any.
        send_code: Whether the feed sends the RxNorm code with the drug text.
    """

    order: str
    sub_id: int
    item: FormularyItem
    start: datetime
    end: datetime | None
    given: bool
    recorded: datetime
    correction: Correction | None = None
    send_code: bool = False

    @property
    def dose(self) -> str:
        """The charted dose."""
        return self.item.dose


@dataclass(frozen=True, slots=True)
class FeedEncounter:
    """An ED or observation encounter as a feed carries it.

    Attributes:
        number: Position in the feed (0-based).
        visit: Visit number (PV1-19 CX.1; the FHIR Encounter id).
        patient: Medical record number (PID-3; FHIR Patient id).
        name: Patient name (family, given).
        birth_date: ``YYYYMMDD``.
        sex: ``F`` or ``M``.
        facility: Sending facility (MSH-4, CX.4 of PV1-19; FHIR serviceProvider).
        vendor: ``epic`` or ``cerner``: the message shape the facility's EHR sends.
        observation: Whether the stay is (or becomes) observation.
        observation_from: When the class became observation (ED first), None if from arrival.
        arrival: Arrival time; every charting time is at or after it.
        discharge: Discharge time (ADT^A03; FHIR period.end); after every charting time.
        administrations: The administrations, in the order they were drawn.
    """

    number: int
    visit: str
    patient: str
    name: tuple[str, str]
    birth_date: str
    sex: str
    facility: str
    vendor: str
    observation: bool
    observation_from: datetime | None
    arrival: datetime
    discharge: datetime
    administrations: tuple[FeedAdministration, ...]

    def patient_class_at(self, moment: datetime) -> str:
        """PV1-2 as sent at a moment: ``E`` in the ED, ``OBS`` once in observation."""
        if not self.observation:
            return "E"
        if self.observation_from is not None and moment < self.observation_from:
            return "E"
        return "OBS"

    def events(self) -> list[FeedEvent]:
        """Everything the feed sends for this encounter, in charting order, discharge last."""
        charted = [(a.recorded, ADMINISTERED, a.order, a.sub_id, a) for a in self.administrations]
        charted.extend(
            (a.correction.recorded, CORRECTED, a.order, a.sub_id, a) for a in self.administrations if a.correction
        )
        charted.sort(key=lambda entry: entry[:4])
        found = [FeedEvent(at, kind, self, admin) for at, kind, _, _, admin in charted]
        found.append(FeedEvent(self.discharge, DISCHARGED, self, None))
        return found


ADMINISTERED, CORRECTED, DISCHARGED = "administered", "corrected", "discharged"


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One message's worth of feed: an administration charted, corrected, or a discharge."""

    at: datetime
    kind: str
    encounter: FeedEncounter
    administration: FeedAdministration | None

    def __post_init__(self) -> None:
        if (self.administration is None) != (self.kind == DISCHARGED):
            raise ValueError("an administration event needs its administration, a discharge none")


def feed_encounters(seed: int, count: int | None = None) -> Iterator[FeedEncounter]:
    """Feed encounters from ``seed``, one at a time (endless when ``count`` is None).

    Arrivals are a few minutes apart and never go back in time, so ``timeline`` can merge
    encounters while holding only the open ones. ED stays last up to 8 hours, observation
    stays up to 40; each has 1–40 administrations: pushes (repeated pushes reuse their
    order with the next sub-id), piggyback infusions (chemotherapy in infusion-suite
    visits), hydration and IM injections; ~5 % are not given and ~5 % are corrected later.
    """
    rng = random.Random(seed)  # noqa: S311 - deterministic test data, not security
    arrival = FEED_START
    number = 0
    while count is None or number < count:
        arrival += timedelta(seconds=rng.randint(0, 480))
        yield _feed_encounter(rng, seed, number, arrival)
        number += 1


def _feed_encounter(rng: random.Random, seed: int, number: int, arrival: datetime) -> FeedEncounter:
    facility, vendor = FACILITIES[0] if rng.random() < 0.7 else FACILITIES[1]
    observation = rng.random() < 0.3
    suite = not observation and rng.random() < 0.15
    observation_from = (
        arrival + timedelta(minutes=rng.randint(120, 360)) if observation and rng.random() < 0.7 else None
    )
    span = 60 * (40 if observation else 8)
    visit = f"V{seed}-{number:07d}"
    orders: dict[str, tuple[str, int]] = {}  # push drug text → (order, last sub-id)
    admins: list[FeedAdministration] = []
    for index in range(rng.randint(1, 40)):
        start = arrival + timedelta(minutes=rng.randint(0, span))
        roll = rng.random()
        end: datetime | None = None
        if roll < 0.55:
            item = rng.choice(FEED_PUSHES)
        elif roll < 0.75:
            item = rng.choice(FEED_CHEMO if suite else FEED_INFUSIONS)
            end = start + timedelta(minutes=rng.choice((20, 30, 45, 60, 90, 91, 120, 180)))
        elif roll < 0.9:
            item = rng.choice(FEED_FLUIDS)
            end = start + timedelta(minutes=rng.choice((20, 30, 31, 60, 120, 240)))
        else:
            item = FEED_IM
        held = orders.get(item.text) if item.kind == "push" else None
        if held is not None and rng.random() < 0.6:
            order, sub_id = held[0], held[1] + 1
        else:
            order, sub_id = f"{visit}-{index:02d}", 1
        if item.kind == "push":
            orders[item.text] = (order, sub_id)
        given = rng.random() >= 0.05
        recorded = (end or start) + timedelta(minutes=rng.randint(0, 20), seconds=rng.randint(0, 59))
        correction = None
        if rng.random() < 0.05:
            fix_at = recorded + timedelta(minutes=rng.randint(5, 180))
            if rng.random() < 0.5:
                correction = Correction("D", fix_at, end, item.dose)
            elif end is not None:
                correction = Correction("U", fix_at, end + timedelta(minutes=rng.choice((-10, 15, 35))), item.dose)
            else:
                correction = Correction("U", fix_at, None, str(int(item.dose) * 2))
        send_code = bool(item.rxnorm) and rng.random() < 0.6
        admins.append(FeedAdministration(order, sub_id, item, start, end, given, recorded, correction, send_code))
    last = max(a.correction.recorded if a.correction else a.recorded for a in admins)
    discharge = last + timedelta(minutes=rng.randint(5, 90))
    return FeedEncounter(
        number=number,
        visit=visit,
        patient=f"MRN{seed}-{number:07d}",
        name=(rng.choice(_SURNAMES), rng.choice(_GIVEN_NAMES)),
        birth_date=f"{rng.randint(1935, 2008)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        sex=rng.choice("FM"),
        facility=facility,
        vendor=vendor,
        observation=observation,
        observation_from=observation_from,
        arrival=arrival,
        discharge=discharge,
        administrations=tuple(admins),
    )


def timeline(encounters: Iterable[FeedEncounter], records: int | None = None) -> Iterator[FeedEvent]:
    """Interleave encounters' events into one stream in charting-time order.

    Encounters must come in arrival order (``feed_encounters`` does). Only the encounters
    whose events are not all sent yet are held, so memory stays flat for any feed length.
    With ``records``, no encounter is started once that many events are under way; the ones
    started are finished (the total is ``records`` plus at most one encounter's events).
    """
    source = iter(encounters)
    heap: list[tuple[datetime, int, int, list[FeedEvent]]] = []
    upcoming = next(source, None)
    started = 0
    while heap or upcoming is not None:
        while upcoming is not None and (not heap or upcoming.arrival <= heap[0][0]):
            events = upcoming.events()
            heapq.heappush(heap, (events[0].at, upcoming.number, 0, events))
            started += len(events)
            upcoming = None if records is not None and started >= records else next(source, None)
        _, number, index, events = heapq.heappop(heap)
        yield events[index]
        if index + 1 < len(events):
            heapq.heappush(heap, (events[index + 1].at, number, index + 1, events))
