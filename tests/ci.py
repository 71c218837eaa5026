"""Skips that must not stay silent under CI: with ``CI`` set (``.ci/run`` exports it) they fail.

On a developer's machine a missing optional piece (a TLS listener, the public samples laid out
beside the repository, a test dependency) is a skip with its reason; under CI every piece is
installed, so its absence is a broken set-up that must fail the run, as ``broker.missing`` and
``postgres.missing`` do for the broker and the database.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

IN_CI = bool(os.environ.get("CI"))


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip with ``reason`` locally; fail with it under CI."""
    if IN_CI:
        pytest.fail(f"required under CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def import_or_skip(name: str) -> ModuleType:
    """``pytest.importorskip``, except that under CI a missing module fails the run."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        skip_unless_ci(f"{name} cannot be imported ({error.__class__.__name__}): pip install -e '.[test]'")
