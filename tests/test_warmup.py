"""``jaxnst warmup`` (issue 20): it fills the persistent compile cache with the programs a run of
that shape compiles, so the run that follows compiles nothing; a bad argument is one line, exit 2.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxnst import image_io
from jaxnst.cli import warmup
from jaxnst.pipeline.options import MIN_SIDE


def _cli(*args, cache):
    env = {**os.environ, "JAXNST_COMPILE_CACHE": "", "JAX_EXPLAIN_CACHE_MISSES": "1"}
    cmd = [sys.executable, "-m", "jaxnst.cli", *map(str, args), "--compile-cache", str(cache)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def test_warmup_fills_the_cache_for_a_run_of_that_shape(tmp_path, real_vars):
    """A 32x24 content (--aspect 4:3, 32 px) and a square style: the warmup lists the programs it
    compiled and a total; afterwards the cache holds them, and a CLI run of that shape loads every
    program it needs from it (no miss in JAX's log), compiling in a fraction of the warmup's time.
    """
    cache = tmp_path / "cache"
    w = _cli("warmup", "--size", 32, "--aspect", "4:3", "--style-aspect", "1:1", cache=cache)
    assert w.returncode == 0, w.stderr
    lines = w.stdout.splitlines()
    assert lines[0].startswith("jaxnst warmup: content 32x24 px, style 32x32 px, lbfgs")
    assert any(re.match(r"  compiled +[0-9.]+ s  jit\(run_chunk\)", ln) for ln in lines), lines
    total = re.search(
        r"(\d+) programs \((\d+) compiled, \d+ already cached\), ([0-9.]+) s", lines[-1]
    )
    assert total and int(total[2]) >= 4 and f"cache: {cache}" in lines[-1], lines[-1]
    # (JAX's entries, and jaxnst's own programs in the store: jaxnst-programs/)
    assert sum(p.is_file() for p in cache.rglob("*")) >= int(total[2])
    assert len(list((cache / "jaxnst-programs").glob("*.bin"))) >= 3  # descent, 2 targets

    rng = np.random.default_rng(0)
    Image.fromarray((rng.uniform(size=(60, 80, 3)) * 255).astype(np.uint8)).save(tmp_path / "c.png")
    Image.fromarray((rng.uniform(size=(50, 50, 3)) * 255).astype(np.uint8)).save(tmp_path / "s.png")
    rep = tmp_path / "r.json"
    r = _cli(tmp_path / "c.png", tmp_path / "s.png", "-o", tmp_path / "o.png", "--size", 32,
             "--iterations", 3, "--json", rep, "--quiet", cache=cache)  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = __import__("json").loads(rep.read_text())
    missed = [ln for ln in r.stderr.splitlines() if "PERSISTENT COMPILATION CACHE MISS" in ln]
    assert report["image_size"] == [32, 24] and missed == [], missed
    assert report["compile_cache_hits"] >= 4  # the descent, two targets, one helper: all hits
    # A store miss compiles past JAX's cache and logs no miss: count what XLA compiled instead.
    assert report["programs_compiled"] == 0, report
    assert report["compile_seconds"] < 0.5 * float(total[3]), (report, lines[-1])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--size", "8"], "--size must be at least"),
        (["--aspect", "3"], "expected W:H"),
        (["--aspect", "0:2"], "two positive numbers"),
        (["--shape", "8x64"], "--shape must be at least"),
        (["--shape", "big"], "expected HxW"),
        (["--shape", "32x32", "--aspect", "1:1"], "not allowed with"),
        (["--optimizer", "sgd"], "invalid choice"),
        (["--style-layers", "conv9_1"], "unknown style layer"),
        (["--style-scale", "0"], "--style-scale must be"),
        (["--weights", "/nonexistent/vgg19.h5"], "not found"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv, message, capsys):
    try:
        code = warmup.main(argv + ["--no-compile-cache"])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_shapes_are_those_of_the_cli_resize():
    """--aspect W:H gives exactly the shape the CLI resizes a W x H image to (long side --size,
    short side at least MIN_SIDE); the style follows the content's aspect unless told."""
    for size, (w, h) in [(384, (451, 300)), (512, (1, 1)), (64, (3, 17)), (100, (1000, 10))]:
        resized = image_io.resize(np.zeros((h, w, 3), np.float32), size, min_side=MIN_SIDE)
        assert warmup.sized(size, (w, h)) == resized.shape[:2]
    args = warmup.build_parser().parse_args(["--size", "384", "--aspect", "451:300"])
    assert warmup.shapes(args) == ((255, 384), (255, 384))
    args = warmup.build_parser().parse_args(["--shape", "100x60", "--style-scale", "2"])
    assert warmup.shapes(args) == ((100, 60), (200, 120))
    assert "square" in warmup.build_parser().format_help()


def test_warmup_train_fills_the_cache_for_a_training_run(tmp_path, real_vars):
    """``jaxnst warmup --train`` with a training run's shaping flags: the run that follows (the
    same flags, real photos, a style of the warmed aspect) loads its programs from the cache."""
    cache = tmp_path / "cache"
    shape = ["--size", 32, "--batch", 2, "--width", 0.25, "--held-out", 2]
    w = _cli("warmup", "--train", *shape, "--style-aspect", "3:2", cache=cache)
    assert w.returncode == 0, w.stderr
    total = re.search(r"(\d+) programs \((\d+) compiled", w.stdout.splitlines()[-1])
    assert total and int(total[2]) >= 3, w.stdout  # style targets, the step, the held-out score
    rng = np.random.default_rng(1)
    (tmp_path / "photos").mkdir()
    for i in range(5):
        im = (rng.uniform(size=(40, 48, 3)) * 255).astype(np.uint8)
        Image.fromarray(im).save(tmp_path / "photos" / f"{i}.png")
    style = (rng.uniform(size=(60, 90, 3)) * 255).astype(np.uint8)
    Image.fromarray(style).save(tmp_path / "s.png")
    rep = tmp_path / "r.json"
    out = ["-o", tmp_path / "m.jaxnst", "--json", rep, "--quiet"]
    r = _cli("train", tmp_path / "s.png", "--images", tmp_path / "photos", *out, *shape,
             "--steps", 2, cache=cache)  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = __import__("json").loads(rep.read_text())
    # (1: the style's resize from its file's own size, a fraction of a second)
    assert report["steps"] == 2 and report["programs_compiled"] <= 1, report
    assert report["compile_cache_hits"] >= 3, report
    assert report["compile_seconds"] < 0.5 * float(re.search(r"([0-9.]+) s compiling", w.stdout)[1])
