"""Command-line entry points: one module per command, thin over the service code."""
