"""The ``jaxnst`` program's exit (issue 20): after ``main`` it runs the exit handlers and keeps
``main``'s exit code, skipping only the interpreter's own teardown."""

import subprocess
import sys

import pytest

CODE = (
    "import atexit; from jaxnst.cli import command; command.main = lambda: {code}; "
    "atexit.register(lambda: print('handler ran', flush=True)); "
    "print('partial line', end=''); command.entry()"
)


@pytest.mark.parametrize("code", [0, 2, 130])
def test_entry_runs_the_exit_handlers_and_keeps_the_exit_code(code):
    p = subprocess.run(
        [sys.executable, "-c", CODE.format(code=code)], capture_output=True, text=True
    )
    assert p.returncode == code, p.stderr
    assert p.stdout == "partial linehandler ran\n", p.stdout  # buffered output flushed too


def test_python_dash_m_is_the_same_program(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "jaxnst.cli", str(tmp_path / "missing.png"), "x.png", "-o", "o.png"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "missing.png" in p.stderr, p.stderr
