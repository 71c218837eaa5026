"""Deterministic synthetic feeds for tests and benchmarks (never used on real input).

``encounters`` (model encounters for the rules), ``feed`` (the model of a feed and its
sending order), ``hl7`` and ``fhir`` (rendering), ``render`` (streams of records and files).
"""
