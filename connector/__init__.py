"""ivpush: codes IV drug-administration services from medication administration events."""

__version__ = "0.1.0"
