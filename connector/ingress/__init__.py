"""Ingress: MLLP and HTTP listeners that put inputs on the input exchange, the way engines send them.

The edge only: a listener checks that a message is framed and reads as HL7 (MSH, MSH-10) or as
FHIR JSON, publishes it to the input exchange exactly as ``ivpush publish`` does, and answers
the sender only after the broker confirmed it (``AA``, HTTP 200/202). What it cannot accept is
answered ``AR`` (fix the message) and what it cannot store now is answered ``AE`` (send it
again later); coding happens in ``ivpush consume``.
"""
