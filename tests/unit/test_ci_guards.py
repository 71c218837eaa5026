"""The suite's own guards: under CI a missing piece fails instead of skipping, and .ci/run says it is CI."""

import subprocess
from pathlib import Path

import ci
import pytest

REPO = Path(__file__).resolve().parents[2]


def test_a_missing_piece_fails_under_ci_and_only_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ci, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="required under CI: no TLS listener"):
        ci.skip_unless_ci("no TLS listener")
    with pytest.raises(pytest.fail.Exception, match="ivpush_no_such_module cannot be imported"):
        ci.import_or_skip("ivpush_no_such_module")
    monkeypatch.setattr(ci, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="no TLS listener"):
        ci.skip_unless_ci("no TLS listener")
    with pytest.raises(pytest.skip.Exception):
        ci.import_or_skip("ivpush_no_such_module")
    assert ci.import_or_skip("json").dumps([]) == "[]"


def test_ci_run_exports_ci_itself_before_running_the_suite() -> None:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    prologue = script.split("need_apt=()")[0]  # what runs before anything is installed or tested
    assert "make test" in script.split("need_apt=()")[1]
    probe = prologue.replace('cd "$(dirname "$0")/.."', "") + 'printf %s "$CI"\n'
    clean = {"PATH": "/usr/bin:/bin"}  # CI unset, as a caller that forgot it
    done = subprocess.run(["bash", "-c", probe], env=clean, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, "true"), done.stderr
