"""``jaxnst video``: outputs, bad input (exit 2, one line, nothing written), the missing extra,
interrupt and --resume."""

import json

import numpy as np
import pytest

from jaxnst import image_io
from jaxnst.cli import command as cli
from jaxnst.video import synthetic

av = pytest.importorskip("av")
pytest.importorskip("cv2")
from jaxnst.video import io as vio  # noqa: E402
from jaxnst.video import run as vrun  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("video")
    clip = synthetic.moving_object(4, (24, 32))
    vio.write(d / "clip.mp4", list(clip.frames), fps=10)
    frames = d / "frames"
    for i, f in enumerate(clip.frames[:3]):
        vio.save_frame(frames, i + 1, f)
    image_io.save(d / "style.png", synthetic.sample_image("swirls.png", 32))
    return d


def run(argv, capsys):
    try:
        code = cli.main(["video"] + [str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


FAST = ["--size", 32, "--iterations", 3, "--quiet"]


@pytest.mark.slow  # video end to end, real weights
def test_folder_and_gif_outputs_and_report(files, tmp_path, capsys, real_vars):
    code, err = run(
        [
            files / "frames",
            files / "style.png",
            "-o",
            tmp_path / "out",
            *FAST,
            "--json",
            tmp_path / "r.json",
            "--preserve-color",
            "luminance",
        ],
        capsys,
    )
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["frame_00001.png", "frame_00002.png", "frame_00003.png"]
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["mode"] == "sequential" and len(r["seconds_per_frame"]) == 3
    assert r["losses"]["temporal"][0] == 0 and r["losses"]["temporal"][1] > 0
    code, err = run(
        [
            files / "clip.mp4",
            files / "style.png",
            "-o",
            tmp_path / "o.gif",
            *FAST,
            "--passes",
            1,
            "--pass-iterations",
            2,
            "--max-frames",
            3,
            "--fps",
            5,
        ],
        capsys,
    )
    assert code == 0, err
    back = vio.read(tmp_path / "o.gif")
    # 3 of the 4 frames: the shapes of the multi-pass resume test's, which reuses the programs
    assert back.frames.shape == (3, 24, 32, 3) and back.fps == pytest.approx(5)
    assert not (tmp_path / "o.gif.frames").exists()  # the work folder is removed


def _bad(files, tmp_path, case):
    p = tmp_path / "in.mp4"
    if case == "missing":
        return p
    if case == "empty":
        p.write_bytes(b"")
    elif case == "corrupt":
        p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    elif case == "truncated":
        data = (files / "clip.mp4").read_bytes()
        p.write_bytes(data[: len(data) // 2])
    elif case == "no_frames":
        p = tmp_path / "empty_dir"
        p.mkdir()
    elif case == "sizes":
        p = tmp_path / "mixed"
        vio.save_frame(p, 1, np.zeros((24, 32, 3), np.float32))
        vio.save_frame(p, 2, np.zeros((30, 32, 3), np.float32))
        p = p / "frame_00002.png", p  # the message names the odd frame
    elif case == "no_video":
        p = tmp_path / "a.mp4"
        with av.open(str(p), "w") as out:
            a = out.add_stream("aac", rate=8000)
            f = av.AudioFrame.from_ndarray(
                np.zeros((1, 4000), np.float32), format="fltp", layout="mono"
            )
            f.sample_rate = 8000
            for pk in list(a.encode(f)) + list(a.encode(None)):
                out.mux(pk)
    return p


@pytest.mark.parametrize(
    "case",
    ["missing", "empty", "corrupt", "truncated", "no_frames", "sizes", "no_video", "extension"],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(files, tmp_path, capsys, case):
    named = src = _bad(files, tmp_path, case) if case != "extension" else files / "clip.mp4"
    if isinstance(src, tuple):
        named, src = src
    out = tmp_path / "result" / ("o.avi" if case == "extension" else "o.mp4")
    out.parent.mkdir()
    if case == "extension":
        named = out
    code, err = run([src, files / "style.png", "-o", out, *FAST], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("jaxnst: error:") and str(named) in lines[0]
    assert list(out.parent.iterdir()) == []


def test_a_clip_that_will_not_fit_is_refused_before_it_starts(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAXNST_MEMORY_LIMIT", "1M")
    out = tmp_path / "o.mp4"
    code, err = run([files / "clip.mp4", files / "style.png", "-o", out, *FAST], capsys)
    lines = err.strip().splitlines()
    assert code == 4 and len(lines) == 1 and "available" in lines[0], err
    assert not out.exists()


def test_memory_and_time_lines_count_the_largest_batch_and_every_pass(monkeypatch, small_vars):
    from jaxnst.cli import estimate
    from jaxnst.pipeline.options import make_options

    monkeypatch.setenv("JAXNST_MEMORY_LIMIT", "16G")
    monkeypatch.setenv("JAXNST_TIME_ESTIMATE", "1")
    monkeypatch.setattr(estimate, "seconds_per_megapixel", lambda *a: 100.0)
    o = make_options(iterations=10)
    evals = estimate.TARGETS_EVALS + 1 + estimate.LBFGS_EVALS_PER_STEP * 10 + 3
    seq = vrun.plan_lines((4, 300, 300, 3), o, small_vars, 0, 5)
    assert seq[0].startswith("memory: ~") and "(JAXNST_MEMORY_LIMIT=16G)" in seq[0], seq
    minutes = 4 * evals * 100 * 0.09 / 60
    assert seq[1] == f"time: ~{minutes:.0f} min estimated for the descent (plus compiling)"
    multi = vrun.plan_lines((4, 300, 300, 3), o, small_vars, 2, 5)
    again = 2 * 4 * (estimate.TARGETS_EVALS + 1 + estimate.LBFGS_EVALS_PER_STEP * 5 + 3)
    assert multi[1].startswith(f"time: ~{minutes + again * 100 * 0.09 / 60:.0f} min"), multi
    gib = [float(x.split("~")[1].split(" ")[0]) for x in (seq[0], multi[0])]
    assert gib[1] > gib[0]  # all four frames at once in the first pass


def test_without_the_extra_one_line_names_the_install(files, tmp_path, capsys, monkeypatch):
    from jaxnst.video import cli as vcli

    monkeypatch.setattr(vcli, "_need_extra", lambda: False)
    code, err = run([files / "clip.mp4", files / "style.png", "-o", tmp_path / "o.mp4"], capsys)
    assert code == 2
    assert err.strip() == "jaxnst: error: video needs: pip install 'jaxnst[video]'"


# Multi-pass resume is also tested through the API (test_video_multipass); here it is slow.
@pytest.mark.parametrize("passes", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_interrupt_and_resume_continue_where_it_stopped(
    files, tmp_path, capsys, monkeypatch, real_vars, passes
):
    args = [
        files / "frames",
        files / "style.png",
        *FAST,
        "--passes",
        passes,
        "--pass-iterations",
        2,
    ]
    code, err = run([*args, "-o", tmp_path / "full"], capsys)
    assert code == 0, err
    real_save, calls = vrun.save_state, []

    def interrupt_after_two(*a, **k):
        real_save(*a, **k)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(vrun, "save_state", interrupt_after_two)
    out = tmp_path / "cut"
    code, err = run([*args, "-o", out], capsys)
    assert code == 130 and "--resume" in err
    assert (out / vrun.STATE).is_file()
    monkeypatch.setattr(vrun, "save_state", real_save)
    counted = []
    from jaxnst.video import core, multipass

    real_chunk = core._run

    def counting(problem, lay, batch, callback, info):
        counted.append(info.get("frame", info.get("pass")))
        return real_chunk(problem, lay, batch, callback, info)

    monkeypatch.setattr(core, "_run", counting)
    monkeypatch.setattr(multipass, "_run", counting)
    code, err = run([*args, "-o", out, "--resume"], capsys)
    assert code == 0, err
    # only what was left: frame 3 (index 2), or pass 2 (its two red-black halves)
    assert counted == ([2] if passes == 0 else [2, 2])
    assert not (out / vrun.STATE).exists()
    for i in (1, 2, 3):
        a = image_io.load(out / f"frame_0000{i}.png")
        b = image_io.load(tmp_path / "full" / f"frame_0000{i}.png")
        assert np.abs(a - b).max() <= 1 / 255 + 1e-6
    code, err = run([*args, "-o", out, "--resume"], capsys)  # nothing left to resume
    assert code == 2 and "no saved state" in err
