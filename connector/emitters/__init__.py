"""Emitters: pure renderers from charge messages to bytes (JSON, HL7 DFT^P03, FHIR ChargeItem)."""
