"""The hostile corpus (``tests/hostile``): every input gets its documented safe outcome.

Each file is replayed by the real command in its own process (forked from the test process,
``forked_cli``: the console script's entry point without the interpreter's start-up), so a
traceback, a wrong exit code, an unexpected reject, a line on the wrong encounter or a PHI echo
is seen as a user would see it. ``tests/hostile/README.md`` describes the expectations format.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from forked_cli import run_ivpush
from phi_scan import PhiValue, sample_phi, scan

CORPUS = Path(__file__).resolve().parents[1] / "hostile"


def _cases() -> list[Any]:
    cases = []
    for expected in sorted(CORPUS.glob("*/expected.yaml")):
        entries = yaml.safe_load(expected.read_text(encoding="utf-8")) or {}
        for name, spec in entries.items():
            cases.append(pytest.param(expected.parent / name, spec or {}, id=f"{expected.parent.name}/{name}"))
    return cases


CASES = _cases()


def test_the_corpus_has_at_least_eighty_inputs_and_every_file_has_an_expectation() -> None:
    assert len(CASES) >= 80
    listed = {case.values[0] for case in CASES}
    on_disk = {p for p in CORPUS.glob("*/*") if p.name != "expected.yaml"}
    assert on_disk == listed


def net_lines(ndjson: bytes) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """Net charge codes (``code`` or ``code*units``) and the flags of the net lines, per encounter key."""
    current: dict[str, dict[str, dict[str, Any]]] = {}
    for text in ndjson.splitlines():
        message = json.loads(text)
        enc = message["encounter"]
        lines = current.setdefault(f"{enc['assigning_authority']}|{enc['id']}", {})
        for line in message["lines"]:
            if line["action"] == "charge":
                lines[line["line_id"]] = line
            else:
                lines.pop(line["line_id"], None)
    codes = {
        key: sorted(ln["code"] if ln["units"] == 1 else f"{ln['code']}*{ln['units']}" for ln in lines.values())
        for key, lines in current.items()
        if lines
    }
    flags = {
        key: set.intersection(*(set(ln["flags"]) for ln in lines.values())) for key, lines in current.items() if lines
    }
    return codes, flags


@pytest.mark.parametrize(("path", "spec"), CASES)
def test_hostile_input_gets_its_safe_outcome(path: Path, spec: dict[str, Any], tmp_path: Path) -> None:
    out, rejects = tmp_path / "out.ndjson", tmp_path / "rejects.ndjson"
    command = ["replay", str(path), "--out", str(out), "--rejects", str(rejects)]
    command += ["--zone", spec.get("zone", "America/New_York"), *map(str, spec.get("args", []))]
    done = run_ivpush(command, timeout=300)
    stderr = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr[-3000:]
    assert done.returncode == spec.get("exit", 0), stderr[-3000:]

    found = Counter(json.loads(line)["code"] for line in rejects.read_text().splitlines()) if rejects.exists() else {}
    assert dict(found) == spec.get("rejects", {}), rejects.read_text() if rejects.exists() else stderr

    codes, flags = net_lines(out.read_bytes() if out.exists() else b"")
    expected_lines = {key: sorted(map(str, value)) for key, value in spec.get("lines", {}).items()}
    assert codes == expected_lines
    for key, wanted in spec.get("flags", {}).items():
        assert set(wanted) <= flags.get(key, set()), (key, flags.get(key))

    data = path.read_bytes() if path.is_file() else b""
    phi = sample_phi([], [(data, path.name)]) if data else {}
    phi.update({secret.lower(): PhiValue(secret, "secret", path.name) for secret in spec.get("secrets", [])})
    outputs = {"stderr": stderr, "rejects": rejects.read_text() if rejects.exists() else ""}
    if phi:
        assert scan(outputs, phi) == []
