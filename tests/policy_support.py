"""What the site policy tests share: a mapping file written into a site directory, and the problems it loads with."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.policy.loader import load_policy
from connector.policy.yamlfile import MappingError

META = "meta: {name: x, reviewed: 2026-11-26, reference: test, effective_from: 2020-01-01}\n"


def write(tmp_path: Path, name: str, body: str) -> Path:
    """``name.yaml`` in the site directory ``tmp_path``: a ``meta`` line, then ``body`` (from line 2)."""
    (tmp_path / f"{name}.yaml").write_text(META + body, encoding="utf-8")
    return tmp_path


def problems_of(tmp_path: Path) -> list[str]:
    """The problems loading the site directory ``tmp_path`` fails with."""
    with pytest.raises(MappingError) as caught:
        load_policy(tmp_path)
    return caught.value.problems


def assert_problem_at(tmp_path: Path, name: str, line: int, message: str) -> None:
    """Loading ``tmp_path`` reports ``message`` at ``name.yaml:line`` (``{site}`` in it stands for ``tmp_path``)."""
    problems = problems_of(tmp_path)
    wanted = message.replace("{site}", str(tmp_path))
    assert any(p.startswith(f"{tmp_path}/{name}.yaml:{line}: ") and wanted in p for p in problems), problems
