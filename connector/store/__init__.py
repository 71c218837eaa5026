"""Encounter state: the Protocol, an in-memory and a SQLite implementation."""
