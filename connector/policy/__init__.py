"""Policy: the typed view of ``mappings/`` (pure) and the loader that reads it (edge)."""
