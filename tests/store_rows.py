"""Rows as the store wrote them before issue 13 (schema 3): the codec and a migrated SQLite state still read them."""

OLD_ATTRS = {  # an encounter's attributes
    "key": "FAC|V1",
    "class": "outpatient",
    "inpatient_from": None,
    "class_at": "2026-03-02T08:00:00-05:00",
    "claim": "facility",
    "payer": "default",
    "pos": "",
    "facility": "FAC",
    "separate_same_day": False,
    "closed": False,
}
OLD_ADMIN = {  # an administration of it
    "id": "a1",
    "enc": "FAC|V1",
    "drug": {"c": [["RXNORM", "26225", "ondansetron"]], "t": "Ondansetron"},
    "start": "2026-03-02T10:00:00-05:00",
    "route": {"c": [["HL70162", "IV", ""]], "t": ""},
    "method": {"c": [], "t": ""},
    "end": "2026-03-02T11:00:00-05:00",
    "status": "given",
    "version": "1",
    "site": "",
    "dose": "4",
    "dose_unit": "mg",
    "infuse_minutes": None,
    "has_rate": True,
    "primary": False,
    "contexts": [],
    "department": "",
    "source": ["hl7v2", "MSG1", "RXA-1"],
}
