"""``ivpush`` as a real process forked from the warm test process: what the console script does, minus start-up.

``run_ivpush(args)`` returns what ``subprocess.run([ivpush, *args], capture_output=True)``
would: the child has its own file descriptors 0/1/2 (standard input from ``input`` or
``/dev/null``), its own signal handlers, environment and exit code, and calls the console
script's entry point (``connector.cli.main:main``) with ``sys.argv`` set; an exception that
escapes it is printed as Python prints one (a traceback on stderr, exit code 1), so tests that
assert "no traceback" keep their meaning. It only skips the interpreter's start-up and the
imports (~1.2 s per run on these machines; the corpus tests run hundreds). The child starts
warm: every module imported, and the memos earlier tests filled still filled, so import-order
and cold-cache behaviour cannot show here; that the console script starts in a fresh
interpreter is tested on its own (``test_startup``, ``test_packaging``). Warnings print as in a
fresh process (pytest's recording is undone), stderr escapes what it cannot encode
(``backslashreplace``, as Python's own), a ``KeyboardInterrupt`` ends the child by SIGINT (exit
code -2 here, 130 in a shell), a failed flush at exit is exit code 120, and ``atexit``
handlers run.

Not forked, the real console script run instead: from a process with other threads (a lock
held by one could deadlock the child), or when ``env`` changes what the interpreter reads at
start-up (``PYTHON*``, ``LANG``, ``LC_*``).
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from connector.cli.main import main

IVPUSH = Path(sys.executable).parent / "ivpush"


def run_ivpush(
    args: Sequence[str], *, input: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[bytes]:
    """Run ``ivpush *args`` to its end; ``env`` replaces the environment, as ``subprocess.run`` does."""
    argv = [str(IVPUSH), *map(str, args)]
    if threading.active_count() > 1 or _startup_changed(env):
        return subprocess.run(argv, input=input, capture_output=True, env=env, timeout=timeout, check=False)
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        if input is not None:
            stdin.write(input)
            stdin.seek(0)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            _child(argv, env, stdin.fileno() if input is not None else None, stdout.fileno(), stderr.fileno())
        code = _wait(pid, argv, timeout)
        stdout.seek(0)
        stderr.seek(0)
        return subprocess.CompletedProcess(argv, code, stdout.read(), stderr.read())


def _startup_changed(env: dict[str, str] | None) -> bool:
    """Whether ``env`` sets, differently from this process, a variable read at interpreter start-up."""
    if env is None:
        return False
    names = {name for name in (*env, *os.environ) if name.startswith(("PYTHON", "LC_")) or name == "LANG"}
    return any(env.get(name) != os.environ.get(name) for name in names)


def _wait(pid: int, argv: list[str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise subprocess.TimeoutExpired(argv, timeout)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _child(argv: list[str], env: dict[str, str] | None, stdin: int | None, stdout: int, stderr: int) -> None:
    code = 1
    try:
        os.dup2(stdin if stdin is not None else os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the child's own standard streams
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", errors="backslashreplace", closefd=False)  # noqa: SIM115 - as Python's own
        for number in (signal.SIGINT, signal.SIGTERM):  # a fresh process's dispositions, not pytest's
            signal.signal(number, signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL)
        importlib.reload(warnings)  # pytest records warnings: a fresh process's filters print them
        atexit._clear()  # the test process's handlers (pytest's lock files) are not the child's
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
            time.tzset()
        logging.root.handlers.clear()  # pytest's capture handlers are not the child's
        sys.argv = argv
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if exit_.code is not None and not isinstance(exit_.code, int):
            sys.stderr.write(f"{exit_.code}\n")  # as the interpreter prints a non-integer exit value
    except KeyboardInterrupt:  # the interpreter prints it, then dies by the signal
        traceback.print_exc()
        _end(1, by_signal=signal.SIGINT)
    except BaseException:  # noqa: BLE001 - report anything, then die like a process
        traceback.print_exc()
    _end(code)


def _end(code: int, by_signal: int | None = None) -> None:
    """Exit as the interpreter does: atexit handlers, flushed streams (120 if that fails), or by a signal."""
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - the interpreter's own rule for a failed flush at exit
        code = 120
    if by_signal is not None:
        signal.signal(by_signal, signal.SIG_DFL)
        os.kill(os.getpid(), by_signal)
    os._exit(code)
