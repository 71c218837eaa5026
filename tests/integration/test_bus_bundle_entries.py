"""The consumer on the stub bus with FHIR Bundles read entry by entry (issue #12, class 13).

A delivery whose Bundle has unusable entries commits its good entries and is parked once, with
the first rejected entry's code and a detail naming the entry, never a value; re-driving the
parked copy applies nothing twice.
"""

import json

from connector.adapters.result import Parsed
from connector.bootstrap import local_zone, renderers
from connector.bus.backoff import Backoff
from connector.bus.base import Delivery
from connector.bus.consumer import Consumer, ConsumerSettings, Stop
from connector.bus.inputs import read_delivery
from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER
from connector.bus.stub import StubBroker, StubMessage
from connector.bus.topology import Topology
from connector.policy.model import Policy
from connector.service import EmitOn, Service, ServiceSettings
from connector.store.memory import MemoryStore

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def administration(
    ident: str, visit: str | None, when: str, code: str = "313002", **extra: object
) -> dict[str, object]:
    resource: dict[str, object] = {
        "resourceType": "MedicationAdministration",
        "id": ident,
        "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]},
        "subject": {"reference": "Patient/PQ9001"},
        "effectiveDateTime": when,
        "dosage": {
            "route": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0162", "code": "IV"}]},
            "method": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0165", "code": "IVP"}]},
        },
        **extra,
    }
    if visit is not None:
        resource["context"] = {"reference": f"Encounter/{visit}"}
    return resource


def bundle(*resources: dict[str, object]) -> bytes:
    entries = [
        {"fullUrl": f"urn:uuid:5d1c0e2a-0000-4000-8000-{i:012d}", "resource": r} for i, r in enumerate(resources)
    ]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


class Harness:
    """A consumer over a stub broker, reading deliveries with ``read_delivery`` (as ``ivpush consume`` does)."""

    def __init__(self, policy: Policy) -> None:
        self.broker = StubBroker()
        self.topology = Topology(prefix="stub", formats=("json",))
        self.store = MemoryStore()
        settings = ServiceSettings(renderers(("json",)), emit_on=EmitOn.CHANGE)
        self.service = Service(self.store, policy, settings, clock=lambda: 1000.0)
        self.stop = Stop()
        self.broker.idle_hook = self.stop.request
        self.broker.connect().declare(self.topology)
        self.policy = policy
        self.consumer = Consumer(
            self.broker.connect,
            self.service,
            self.parse,
            self.topology,
            ConsumerSettings(queue=self.topology.input_queue(), prefetch=16, batch_size=8),
            self.stop,
        )
        self.consumer._backoff = Backoff(0.0, 0.0)

    def parse(self, delivery: Delivery) -> Parsed:
        return read_delivery(delivery, self.policy, local_zone(None))

    def run(self, bodies: list[bytes]) -> None:
        for index, body in enumerate(bodies):
            message = StubMessage(body, "feed", message_id=f"in-{index}", content_type="application/fhir+json")
            self.broker.route(self.topology.input_exchange, message)
        self.stop.requested = False
        self.consumer.run()

    def charged(self) -> dict[str, list[str]]:
        lines: dict[str, dict[str, str]] = {}
        for message in self.broker.messages(self.topology.output_queue("json")):
            charge = json.loads(message.body)
            current = lines.setdefault(charge["encounter"]["id"], {})
            for line in charge["lines"]:
                if line["action"] == "charge":
                    current[line["line_id"]] = line["code"]
                else:
                    current.pop(line["line_id"], None)
        return {visit: sorted(codes.values()) for visit, codes in lines.items() if codes}


def test_a_bundle_with_bad_entries_is_charged_for_its_good_entries_and_parked_once(policy: Policy) -> None:
    body = bundle(
        administration("ma-q1", "V7001", "2026-03-02T09:00:00-05:00"),
        administration("ma-q2", None, "2026-03-02T09:05:00-05:00"),  # no encounter
        administration("ma-q3", "V7001", "2026-03-02T09:30:00-05:00", ZebrafishQuillonNote="x"),
        administration("ma-q4", "V7002", "2026-03-02T10:00:00-05:00"),
    )
    harness = Harness(policy)
    harness.run([body])
    assert harness.charged() == {"V7001": ["96374"], "V7002": ["96374"]}
    (parked,) = harness.broker.messages(harness.topology.parking_queue)
    assert parked.body == body
    assert parked.headers[ERROR_HEADER] == "missing_encounter_key"
    detail = parked.headers[DETAIL_HEADER]
    assert detail == "Bundle.entry[1]: MedicationAdministration.context absent (+1 more rejected parts)"
    assert "Quillon" not in json.dumps(parked.headers)
    assert harness.consumer.stats.parked == 1

    harness.run([parked.body])  # re-driven as is: the committed entries are duplicates, nothing new
    assert harness.charged() == {"V7001": ["96374"], "V7002": ["96374"]}
    copies = harness.broker.messages(harness.topology.parking_queue)
    assert len(copies) == 2 and len({m.message_id for m in copies}) == 1  # parked again, same id: de-duplicable
    assert len(harness.broker.messages(harness.topology.output_queue("json"))) == 2


def test_a_bundle_whose_every_entry_is_unusable_is_parked_and_charges_nothing(policy: Policy) -> None:
    body = bundle(administration("ma-q5", None, "2026-03-02T09:00:00-05:00"))
    harness = Harness(policy)
    harness.run([body, bundle(administration("ma-q6", "V7003", "2026-03-02T09:00:00-05:00"))])
    assert harness.charged() == {"V7003": ["96374"]}
    (parked,) = harness.broker.messages(harness.topology.parking_queue)
    assert parked.body == body and parked.headers[ERROR_HEADER] == "missing_encounter_key"


def test_in_an_ndjson_delivery_the_parked_detail_names_the_line(policy: Policy) -> None:
    good = bundle(administration("ma-q7", "V7004", "2026-03-02T09:00:00-05:00"))
    bad = bundle(administration("ma-q8", "V7004", "2026-03-02T09:30:00-05:00", status="given"))
    harness = Harness(policy)
    harness.run([good + b"\n" + bad + b"\n"])
    assert harness.charged() == {"V7004": ["96374"]}
    (parked,) = harness.broker.messages(harness.topology.parking_queue)
    assert parked.headers[ERROR_HEADER] == "unknown_status"
    assert parked.headers[DETAIL_HEADER] == (
        "line 2: Bundle.entry[0]: MedicationAdministration.status not in the status mapping"
    )
