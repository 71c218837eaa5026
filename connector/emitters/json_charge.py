"""The ``ivpush.charge/1`` JSON contract: one message per line (NDJSON) per encounter delta.

The JSON Schema ships beside this module (``charge.schema.json``) and is documented in the
README. Output is deterministic: fixed key order, no whitespace, UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

from connector.model.messages import ChargeMessage

SCHEMA = "ivpush.charge/1"
CONTENT_TYPE = "application/json"


def as_dict(message: ChargeMessage) -> dict[str, Any]:
    """The message as the JSON contract's object."""
    ref = message.encounter
    return {
        "schema": SCHEMA,
        "message_id": message.message_id,
        "encounter": {
            "id": ref.visit_number,
            "assigning_authority": ref.assigning_authority,
            "patient_id": ref.patient_id,
            "patient_class": message.patient_class.value,
            "facility": ref.facility,
        },
        "claim_type": message.claim_type.value,
        "policy": message.policy,
        "policy_version": message.policy_version,
        "lines": [
            {
                "line_id": item.line.line_id,
                "action": item.action.value,
                "code": item.line.code,
                "units": item.line.units,
                "modifiers": list(item.line.modifiers),
                "service_date": item.line.service_date.isoformat(),
                "revenue_code": item.line.revenue_code,
                "charge_code": item.line.charge_code,
                "administration_ids": list(item.line.administration_ids),
                "rule": item.line.rule,
                "reason": item.line.reason,
                "flags": list(item.line.flags),
            }
            for item in message.lines
        ],
    }


def render(message: ChargeMessage) -> bytes:
    """One NDJSON line (with its newline)."""
    return json.dumps(as_dict(message), ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
