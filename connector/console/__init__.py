"""The charge review console (``ivpush serve``): server-rendered pages over a state."""
