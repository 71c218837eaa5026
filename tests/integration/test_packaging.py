"""The wheel carries what a checkout has: top-level mappings/ and demo feeds, every package.

A wheel built from the tree is installed into a fresh virtual environment and run from a
directory with no checkout beside it. The fresh environment borrows only the third-party
dependencies of the test environment (a path entry, so the test needs no registry); ivpush
itself comes from the wheel alone.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_list_in_pyproject_matches_the_packages_on_disk() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "connector").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    data = {"connector.mappings", "connector.mappings.payers", "connector.demo_feeds"}
    assert listed == on_disk | data


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this tree; returns its ``bin`` directory."""
    base = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(base),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = base.glob("ivpush-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=False)
    site = Path(
        subprocess.check_output(
            [str(env_dir / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    # Dependencies only: a plain path entry does not run the test venv's own .pth files, so
    # the editable finder that points at this checkout is not installed in the fresh venv.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(env_dir / "bin" / "python"),
            "install",
            "--quiet",
            "--no-deps",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    return env_dir / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "ivpush"), *args], capture_output=True, text=True, cwd=cwd, check=False, timeout=300
    )


def test_the_installed_wheel_imports_from_itself_not_from_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = subprocess.check_output(
        [
            str(installed / "python"),
            "-c",
            "import connector, connector.policy.loader as l; print(connector.__file__); print(l.DEFAULT_DIR)",
        ],
        text=True,
        cwd=tmp_path,
    ).split()
    assert not where[0].startswith(str(ROOT)), where
    assert where[1].endswith("connector/mappings") and not where[1].startswith(str(ROOT)), where


def test_the_installed_wheel_checks_its_mappings(installed: Path, tmp_path: Path) -> None:
    done = _run(installed, "check", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mappings OK" in done.stdout


def test_the_installed_wheel_runs_the_demo(installed: Path, tmp_path: Path) -> None:
    done = _run(installed, "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "96376" in done.stdout
    checkout = _run(Path(sys.executable).parent, "demo", cwd=ROOT)
    assert done.stdout == checkout.stdout


def test_the_installed_wheel_serves_the_console_pages(installed: Path, tmp_path: Path) -> None:
    replay = _run(installed, "replay", "--state", str(tmp_path / "s.db"), "--out", str(tmp_path / "o.ndjson"),
                  str(ROOT / "examples" / "feeds"), cwd=tmp_path)  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    script = (
        "import sys; from connector.console.app import create_app; from connector.console.reader import StateSource;"
        "from connector.policy.loader import load_policy;"
        "c = create_app(StateSource(sys.argv[1]), load_policy()).test_client();"
        "print(c.get('/').status_code, c.get('/encounter/GENHOSP|ED20260302001').status_code,"
        "c.get('/static/console.css').status_code, create_app.__module__ and __import__('connector').__file__)"
    )
    done = subprocess.run([str(installed / "python"), "-c", script, str(tmp_path / "s.db")], capture_output=True,
                          text=True, cwd=tmp_path, check=False, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    status = done.stdout.split()
    assert status[:3] == ["200", "200", "200"] and not status[3].startswith(str(ROOT)), done.stdout
