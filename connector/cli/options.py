"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from connector.bootstrap import policy_from_settings
from connector.policy.model import Policy
from connector.policy.yamlfile import MappingError

mappings_option: Callable[[Any], Any] = click.option(
    "--mappings",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Site mappings directory overlaying the shipped defaults (env IVPUSH_MAPPINGS).",
)


def load_or_exit(mappings: Path | None) -> Policy:
    """Load the policy or exit 2 with every mapping problem listed."""
    try:
        return policy_from_settings(mappings)
    except MappingError as error:
        for problem in error.problems:
            click.echo(f"mapping error: {problem}", err=True)
        raise SystemExit(2) from error
