"""Two local CPU processes with a coordinator on localhost run one sweep: each takes its share of
the batch, and the outputs are written once and equal a one-process run."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxnst import image_io


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two processes and a coordinator
def test_two_processes_split_the_sweep_and_write_once(tmp_path, real_vars):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.uniform(size=(40, 48, 3)) * 255).astype(np.uint8)).save(tmp_path / "c.png")
    Image.fromarray((rng.uniform(size=(40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "s.png")
    common = [
        str(tmp_path / "c.png"),
        str(tmp_path / "s.png"),
        "--size",
        "32",
        "--iterations",
        "3",
        "--optimizer",
        "adam",
        "--style-weight",
        "1e-4",
        "1e-3",
        "1e-2",
        "--quiet",
    ]
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    port = free_port()
    multi = tmp_path / "multi"
    multi.mkdir()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jaxnst.cli",
                *common,
                "-o",
                str(multi / "o.png"),
                "--json",
                str(multi / "r.json"),
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    written = sorted(f.name for f in multi.iterdir())
    assert written == [
        "o_losses.png",
        "o_sheet.png",
        "o_sw0.0001.png",
        "o_sw0.001.png",
        "o_sw0.01.png",
        "r.json",
    ]
    report = json.loads((multi / "r.json").read_text())
    assert report["processes"] == 2 and report["devices"] == 2

    single = tmp_path / "single"
    single.mkdir()
    p = subprocess.run(
        [sys.executable, "-m", "jaxnst.cli", *common, "-o", str(single / "o.png")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    for name in ("o_sw0.0001.png", "o_sw0.001.png", "o_sw0.01.png"):
        a, b = image_io.load(multi / name), image_io.load(single / name)
        assert np.abs(a - b).max() <= 1.5 / 255, name
