"""Pure coding rules: ``evaluate(encounter, policy) -> ChargeResult``."""

from connector.rules.evaluate import evaluate

__all__ = ["evaluate"]
