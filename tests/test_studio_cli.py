"""``jaxnst serve``: the entry point, its one-line errors, and the token rule."""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from jaxnst.cli.command import main as jaxnst_main
from jaxnst.studio import cli


def test_without_the_extra_it_says_what_to_install(monkeypatch, capsys, tmp_path):
    find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else find(name, *a)
    )
    assert jaxnst_main(["serve", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err == "jaxnst: error: the studio needs: pip install 'jaxnst[studio]'\n"
    assert not (tmp_path / "r").exists()


def test_importing_the_cli_does_not_import_the_web_libraries():
    code = (
        "import sys, jaxnst.studio.cli; "
        "print([m for m in ('starlette', 'uvicorn', 'sse_starlette') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_token_is_required_off_localhost():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert cli.access_token(host, None) == (None, False)
    for host in ("0.0.0.0", "192.0.2.7", "::", "myhost.example"):
        token, generated = cli.access_token(host, None)
        assert generated and token is not None and len(token) >= 24
    assert cli.access_token("0.0.0.0", "given-token") == ("given-token", False)
    assert cli.access_token("127.0.0.1", "given-token") == ("given-token", False)


def test_bad_flags_and_a_busy_port_are_one_line_errors(capsys, tmp_path):
    pytest.importorskip("uvicorn")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        assert cli.main(["--port", str(port), "--results", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"jaxnst: error: cannot listen on 127.0.0.1:{port}")
        assert err.count("\n") == 1
    finally:
        busy.close()
    assert cli.main(["--token", "short"]) == 2
    assert "at least 8" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["--port", "http"])
    assert e.value.code == 2


def test_serve_starts_answers_and_stops_on_ctrl_c(tmp_path):
    httpx2 = pytest.importorskip("httpx2")
    pytest.importorskip("uvicorn")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jaxnst.cli",
            "serve",
            "--port",
            "0",
            "--results",
            str(tmp_path / "res"),
            "--compile-cache",
            str(tmp_path / "xla"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = p.stderr.readline()
        assert line.startswith("jaxnst: studio at http://localhost:"), line
        url = line.split()[3]
        assert "token" not in url
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx2.get(url.replace("localhost", "127.0.0.1") + "api/health", timeout=5)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["ok"]
        assert (tmp_path / "res").is_dir()
        assert (tmp_path / "xla").is_dir()  # jobs load programs from it (`jaxnst warmup` fills it)
        p.send_signal(signal.SIGINT)
        assert p.wait(30) == 0
        assert p.stderr.read() == "jaxnst: studio stopped\n"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
