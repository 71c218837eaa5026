"""Operations: metrics, health endpoints and structured logs (the imperative shell)."""
