import json

import numpy as np
import pytest
from PIL import Image

from jaxnst.cli import command as cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:60, 0:80] / 80
    c = np.stack([x, y, 0.5 + 0 * x], -1)
    Image.fromarray((c * 255).astype(np.uint8)).save(d / "c.png")
    Image.fromarray((rng.uniform(size=(50, 50, 3)) * 255).astype(np.uint8)).save(d / "s.jpg")
    (d / "text.png").write_text("not an image")
    return d


def run(argv, capsys):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own errors (e.g. an invalid choice)
        code = e.code
    out = capsys.readouterr()
    return code, out.err


def test_full_run_writes_image_json_and_intermediates(files, tmp_path, capsys, real_vars):
    out = tmp_path / "o.png"
    code, err = run(
        [
            files / "c.png",
            files / "s.jpg",
            "-o",
            out,
            "--size",
            32,  # 32x24, as the other real-weight runs here (one compiled program per option set)
            "--iterations",
            4,
            "--save-every",
            2,
            "--json",
            tmp_path / "r.json",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    im = Image.open(out)
    assert im.size == (32, 24)
    assert (tmp_path / "o_step00002.png").exists()
    r = json.loads((tmp_path / "r.json").read_text())
    for key in (
        "final_loss",
        "evaluations",
        "iterations",
        "wall_seconds",
        "compile_seconds",
        "device",
        "image_size",
        "weights_sha256",
    ):
        assert key in r
    assert r["iterations"] == 4 and r["evaluations"] >= 5 and r["image_size"] == [32, 24]
    assert set(r["final_loss"]) == {"total", "content", "style", "tv"}
    assert r["options"]["style_layers"] == ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


def test_demo_runs_on_bundled_images(tmp_path, capsys, real_vars):
    out = tmp_path / "demo.png"
    code, err = run(["--demo", "--iterations", 2, "--size", 48, "-o", out], capsys)
    assert code == 0, err
    assert out.exists() and str(out) in err


def test_divergence_exits_3_with_last_finite_image(files, tmp_path, capsys, real_vars):
    out = tmp_path / "d.png"
    code, err = run(
        [
            files / "c.png",
            files / "s.jpg",
            "-o",
            out,
            "--size",
            32,
            "--optimizer",
            "adam",
            "--learning-rate",
            1e30,
            "--iterations",
            10,
            "--quiet",
        ],
        capsys,
    )
    assert code == 3
    assert "non-finite at iteration" in err and out.exists()


@pytest.mark.parametrize(
    "extra, msg",
    [
        (["--style-weight", "-1"], "--style-weight must be a finite number >= 0"),
        (["--content-weight", "nan"], "--content-weight must be a finite number"),
        (["--tv-weight", "inf"], "--tv-weight must be a finite number"),
        (["--iterations", "0"], "--iterations must be >= 1"),
        (["--size", "0"], "--size must be at least 16"),
        (["--style-layers", "conv9_1"], "unknown style layer 'conv9_1'"),
        (["--optimizer", "sgd"], "invalid choice"),
    ],
)
def test_bad_flags(files, tmp_path, capsys, extra, msg):
    out = tmp_path / "o.png"
    code, err = run([files / "c.png", files / "s.jpg", "-o", out, *extra], capsys)
    assert code == 2
    assert msg in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "which, msg",
    [
        ("missing", "no such file"),
        ("text", "not a readable image"),
        ("dir", "is a directory"),
    ],
)
def test_bad_input_files(files, tmp_path, capsys, which, msg):
    bad = {"missing": files / "nope.png", "text": files / "text.png", "dir": files}[which]
    out = tmp_path / "o.png"
    for args in ([bad, files / "s.jpg"], [files / "c.png", bad]):
        code, err = run([*args, "-o", out], capsys)
        assert code == 2 and msg in err and err.count("\n") == 1 and "Traceback" not in err
        assert not out.exists()


@pytest.mark.parametrize(
    "name, msg", [("o.gif2", "unknown output extension"), ("no/dir/o.png", "does not exist")]
)
def test_bad_output_path(files, tmp_path, capsys, name, msg):
    code, err = run([files / "c.png", files / "s.jpg", "-o", tmp_path / name], capsys)
    assert code == 2 and msg in err


def test_existing_output_untouched_on_bad_input(files, tmp_path, capsys):
    out = tmp_path / "keep.png"
    out.write_bytes(b"precious")
    code, _ = run([files / "text.png", files / "s.jpg", "-o", out], capsys)
    assert code == 2 and out.read_bytes() == b"precious"


def test_sweep_writes_one_image_per_value_sheet_plot_and_json(files, tmp_path, capsys, real_vars):
    out = tmp_path / "s.png"
    code, err = run(
        [
            files / "c.png",
            files / "s.jpg",
            "-o",
            out,
            "--size",
            40,
            "--iterations",
            3,
            "--style-weight",
            "1e-4",
            "1e-3",
            "--json",
            tmp_path / "r.json",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    for name in ("s_sw0.0001.png", "s_sw0.001.png", "s_sheet.png", "s_losses.png"):
        assert (tmp_path / name).exists(), name
    assert not out.exists()
    r = json.loads((tmp_path / "r.json").read_text())
    assert [m["style_weight"] for m in r["members"]] == [1e-4, 1e-3]
    assert r["devices"] == 1 and r["batch_evaluations"] >= 4
    assert r["loss_plot"] == str(tmp_path / "s_losses.png")
    plot = np.asarray(Image.open(tmp_path / "s_losses.png"))
    assert plot.shape == (380, 1120, 3) and len(np.unique(plot.reshape(-1, 3), axis=0)) > 10


def test_sweep_without_matplotlib_skips_only_the_plot(
    files, tmp_path, capsys, real_vars, monkeypatch
):
    from jaxnst import image_io

    monkeypatch.setattr(image_io, "can_plot", lambda: False)
    args = [files / "c.png", files / "s.jpg", "-o", tmp_path / "s.png", "--size", 40]
    args += ["--iterations", 3, "--style-weight", "1e-4", "1e-3", "--json", tmp_path / "r.json"]
    code, err = run(args, capsys)
    assert code == 0, err
    assert (tmp_path / "s_sheet.png").exists() and not (tmp_path / "s_losses.png").exists()
    assert json.loads((tmp_path / "r.json").read_text())["loss_plot"] is None
    assert "pip install 'jaxnst[plots]'" in err


def test_content_dir_batches_frames(files, tmp_path, capsys, real_vars):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.open(files / "c.png").rotate(180 * i).save(frames / f"f{i}.png")
    out = tmp_path / "o.png"
    code, err = run(
        [
            "--content-dir",
            frames,
            files / "s.jpg",
            "-o",
            out,
            "--size",
            40,
            "--iterations",
            2,
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    assert (tmp_path / "o_f0.png").exists() and (tmp_path / "o_f1.png").exists()


def test_checkpoint_and_resume_from_the_command_line(files, tmp_path, capsys, real_vars):
    base = [files / "c.png", files / "s.jpg", "--size", 32, "--optimizer", "adam", "--quiet"]
    code, err = run(
        [*base, "-o", tmp_path / "a.png", "--iterations", 4, "--checkpoint-every", 2], capsys
    )
    assert code == 0, err
    ck = tmp_path / "a.ckpt.npz"
    assert ck.exists()  # written at iteration 2
    code, err = run([*base, "-o", tmp_path / "b.png", "--iterations", 4, "--resume", ck], capsys)
    assert code == 0, err
    code, err = run(
        [*base, "-o", tmp_path / "c.png", "--iterations", 4, "--checkpoint-every", 2], capsys
    )
    a, b, c = (np.asarray(Image.open(tmp_path / f"{x}.png")) for x in "abc")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    code, err = run(
        [*base, "-o", tmp_path / "d.png", "--iterations", 4, "--resume", ck, "--style-weight", "1"],
        capsys,
    )
    assert code == 2 and "does not match" in err and not (tmp_path / "d.png").exists()


def test_ctrl_c_writes_a_checkpoint_and_exits_130(files, tmp_path, capsys, real_vars, monkeypatch):
    from jaxnst.optim import optimize

    real = optimize.run_chunk
    calls = {"n": 0}

    def interrupt_second_chunk(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(optimize, "run_chunk", interrupt_second_chunk)
    out = tmp_path / "o.png"
    code, err = run(
        [
            files / "c.png",
            files / "s.jpg",
            "-o",
            out,
            "--size",
            32,
            "--iterations",
            6,
            "--save-every",
            2,
            "--quiet",
        ],
        capsys,
    )
    assert code == 130 and "--resume" in err
    assert (tmp_path / "o.ckpt.npz").exists() and not out.exists()


def test_device_errors_become_a_clear_message(files, tmp_path, capsys, monkeypatch, real_vars):
    import importlib

    st_mod = importlib.import_module("jaxnst.stylize")

    class XlaRuntimeError(RuntimeError):
        pass

    def oom(*a, **k):
        raise XlaRuntimeError(
            "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 9e12 "
            "bytes.\nBufferAssignment OOM Debugging."
        )

    monkeypatch.setattr(st_mod, "stylize", oom)
    out = tmp_path / "o.png"
    code, err = run([files / "c.png", files / "s.jpg", "-o", out, "--size", 32, "--quiet"], capsys)
    assert code == 4 and "out of memory at 32x24 px" in err and "smaller --size" in err
    assert err.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize(
    "extra, want",
    [
        (
            ["--preserve-color", "luminance", "--style-scale", "0.5", "--pooling", "avg"],
            dict(preserve_color="luminance", pooling="avg"),
        ),
        (
            ["--style-loss", "wasserstein", "--style-weight", "50"]
            + ["--preserve-color", "histogram"],
            dict(style_loss="wasserstein", style_weight=50.0, preserve_color="histogram"),
        ),
        (["--optimizer", "adam", "--ema-decay", "0.9"], dict(optimizer="adam", ema_decay=0.9)),
    ],
)
def test_control_flags_reach_the_run(files, tmp_path, capsys, monkeypatch, real_vars, extra, want):
    """Each flag is in the options the run validated (``Result.options``, what ``stylize``
    descended with), and --style-scale in the style it was given (50 px scaled to half the
    content's 32 px); the other flags keep their defaults."""
    import importlib

    from jaxnst.pipeline.options import make_options

    st_mod = importlib.import_module("jaxnst.stylize")
    real, seen = st_mod.stylize, []

    def spy(content, style, **kw):
        seen.append((np.shape(style), real(content, style, **kw)))
        return seen[-1][1]

    monkeypatch.setattr(st_mod, "stylize", spy)
    out = tmp_path / "o.png"
    code, err = run(
        [
            files / "c.png",
            files / "s.jpg",
            "-o",
            out,
            "--size",
            32,
            "--iterations",
            1,  # the flags reach a run; (wasserstein: ~2 s an evaluation, 512x512 eigh)
            "--quiet",
            *extra,
        ],
        capsys,
    )
    assert code == 0, err
    assert out.exists() and len(seen) == 1
    style_shape, result = seen[0]
    defaults = make_options()
    for name in ("preserve_color", "pooling", "style_loss", "style_weight", "optimizer"):
        value = getattr(result.options, name)
        assert value == want.get(name, getattr(defaults, name)), (name, value)
    if "ema_decay" in want:
        assert result.options.ema_decay == want["ema_decay"]
    assert style_shape == ((16, 16, 3) if "--style-scale" in extra else (32, 32, 3))


@pytest.mark.slow  # two CLI runs on the real network (STROTSS's sampled terms: ~15 s)
@pytest.mark.parametrize(
    "extra, want",
    [
        (
            ["--method", "strotss", "--scales", "none", "--init", "noise", "--samples", "64"],
            dict(method="strotss", style_loss="remd", content_loss="self_similarity",
                 param="laplacian", optimizer="rmsprop", samples=64, scales=None),
        ),
        (["--param", "laplacian"], dict(method="gatys", param="laplacian", optimizer="lbfgs")),
    ],
)  # fmt: skip
def test_method_and_param_flags_run_their_recipe(
    files, tmp_path, capsys, monkeypatch, real_vars, extra, want
):
    """``--method strotss`` and ``--param laplacian`` from the command line: the run descends
    with the recipe's options (Result.options), its loss falls, and the report says so."""
    import importlib
    import json

    st_mod = importlib.import_module("jaxnst.stylize")
    real, seen = st_mod.stylize, []
    monkeypatch.setattr(st_mod, "stylize", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    out, rep = tmp_path / "o.png", tmp_path / "r.json"
    argv = [files / "c.png", files / "s.jpg", "-o", out, "--size", 32, "--iterations", 4]
    code, err = run([*argv, "--json", rep, "--quiet", *extra], capsys)
    assert code == 0, err
    assert out.exists() and len(seen) == 1
    r, report = seen[0], json.loads(rep.read_text())
    for name, value in want.items():
        assert getattr(r.options, name) == value, (name, getattr(r.options, name))
        assert report["options"][name] == value, name
    total = r.history["total"]
    assert total[-1] < total[0], total
    assert report["final_loss"]["total"] == pytest.approx(float(total[-1]))


def test_blend_and_modes(files, tmp_path, capsys, real_vars):
    out = tmp_path / "b.png"
    code, err = run(
        [
            files / "c.png",
            f"{files / 's.jpg'},{files / 'c.png'}",
            "-o",
            out,
            "--style-blend-weights",
            "0.7",
            "0.3",
            "--size",
            32,
            "--iterations",
            2,
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    code, err = run(
        [
            files / "c.png",
            f"{files / 's.jpg'},{files / 'c.png'}",
            "-o",
            out,
            "--style-blend-weights",
            "1",
            "--size",
            32,
            "--quiet",
        ],
        capsys,
    )
    assert code == 2 and "1 values for 2 style images" in err
    for mode in ("texture", "reconstruct"):
        o = tmp_path / f"{mode}.png"
        code, err = run(
            ["--mode", mode, files / "s.jpg", "-o", o, "--size", 32, "--iterations", 2, "--quiet"],
            capsys,
        )
        assert code == 0, err
        assert Image.open(o).size == (32, 32)


@pytest.mark.slow  # two CLI processes, real weights
def test_compile_cache_makes_the_second_run_compile_less(files, tmp_path, real_vars):
    """Two CLI processes with the same shapes: the second loads every program it needs from the
    persistent cache (hits reported, no miss in JAX's log, compile time at least halved, less wall
    time), so the cache hits on this CPU (jax-ml/jax#38445 rejected XLA:CPU's own entries on
    AVX-512 machines); the cache directory is private."""
    import os
    import stat
    import subprocess
    import sys

    cache = tmp_path / "xla-cache"
    reports = []
    for i in range(2):
        rep = tmp_path / f"r{i}.json"
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "jaxnst.cli",
                str(files / "c.png"),
                str(files / "s.jpg"),
                "-o",
                str(tmp_path / f"o{i}.png"),
                "--size",
                "32",
                "--iterations",
                "2",
                "--compile-cache",
                str(cache),
                "--json",
                str(rep),
                "--quiet",
            ],
            capture_output=True,
            text=True,
            # JAX logs each persistent-cache miss (at WARNING) when told to explain them
            env={**os.environ, "JAXNST_COMPILE_CACHE": "", "JAX_EXPLAIN_CACHE_MISSES": "1"},
        )
        assert p.returncode == 0, p.stderr
        reports.append(json.loads(rep.read_text()))
        misses = p.stderr.count("PERSISTENT COMPILATION CACHE MISS")
    first, second = reports
    assert first["compile_cache"] == str(cache) and first["compile_cache_hits"] == 0
    # Every program of a cold run is compiled; none of a warm one (a store miss compiles past
    # JAX's cache and logs no miss there: only this count sees it).
    assert first["programs_compiled"] >= 4 and second["programs_compiled"] == 0, (first, second)
    missed = [ln for ln in p.stderr.splitlines() if "PERSISTENT COMPILATION CACHE MISS" in ln]
    # (hits: the descent and the two target programs from jaxnst's store, and JAX's for the rest)
    assert second["compile_cache_hits"] >= 4 and misses == 0, (second["compile_cache_hits"], missed)
    assert len(list((cache / "jaxnst-programs").glob("*.bin"))) == 3
    assert second["compile_seconds"] < 0.5 * first["compile_seconds"], (
        first["compile_seconds"],
        second["compile_seconds"],
    )
    assert any(cache.iterdir())
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_compile_cache_keeps_xla_autotune_results(tmp_path):
    """With the cache on, XLA's per-fusion autotune results (GPU) are kept in it too."""
    import subprocess
    import sys

    code = (
        "import sys, jax; from pathlib import Path; from jaxnst.cli import runtime; "
        "runtime.enable_compile_cache(Path(sys.argv[1]), quiet=True); "
        "print(jax.config.jax_persistent_cache_enable_xla_caches); "
        "print(jax.config.jax_compilation_cache_dir)"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "c")], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["xla_gpu_per_fusion_autotune_cache_dir", str(tmp_path / "c")]


def test_unusable_compile_cache_only_warns(files, tmp_path, capsys, real_vars):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = tmp_path / "o.png"
    code, err = run(
        [
            files / "c.png",
            files / "s.jpg",
            "-o",
            out,
            "--size",
            32,
            "--iterations",
            1,
            "--compile-cache",
            blocker / "sub",
        ],
        capsys,
    )
    assert code == 0, err
    assert "compile cache" in err and out.exists()
