"""``jaxnst train`` and ``jaxnst apply`` (issue 29): refusals (one line, exit 2, nothing written)
and a whole train -> resume -> apply round on generated photos with the small random VGG19 (the
same static shapes as tests/test_feedforward.py, so the programs are shared in a worker)."""

import json

import numpy as np
import pytest
from test_feedforward import photos, stripes

from jaxnst import image_io
from jaxnst.cli import command
from jaxnst.feedforward import model_file

SMALL = ["--size", "32", "--batch", "2", "--width", "0.25", "--chunk", "3", "--held-out", "2"]


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for i, im in enumerate(photos(6)):
        image_io.save(d / f"p{i}.png", im)
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    image_io.save(d / "tiny.png", np.zeros((8, 8, 3), np.float32))
    image_io.save(tmp_path / "style.png", stripes())
    return d


@pytest.fixture
def small_weights(monkeypatch, small_vars):
    from jaxnst.model import weights

    monkeypatch.setattr(weights, "load_variables", lambda *a, **k: (small_vars, "small-test"))


def _one_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err, err
    return err


def test_train_refuses_bad_input_before_any_work(tmp_path, folder, capsys):
    style = str(tmp_path / "style.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "m.jaxnst"
    cases = [
        ([style, "--images", str(tmp_path / "nope"), "-o", str(out)], "no such folder"),
        ([style, "--images", str(empty), "-o", str(out)], "no image files"),
        (
            [style, "--images", str(folder), "-o", str(tmp_path / "x" / "m.jaxnst")],
            "does not exist",
        ),
        ([style, "--images", str(folder), "-o", str(out), "--resume"], "nothing to continue"),
        ([str(tmp_path / "nostyle.png"), "--images", str(folder), "-o", str(out)], "no such file"),
        ([style, "--images", str(folder), "-o", str(out), "--style-weight", "1", "2"], "one value"),
    ]
    for argv, what in cases:
        assert command.main(["train", *argv, *SMALL]) == 2
        assert what in _one_line(capsys)
        assert not out.exists()


def test_train_refuses_a_folder_of_unreadable_images(tmp_path, small_weights, capsys):
    d = tmp_path / "bad"
    d.mkdir()
    for i in range(3):
        (d / f"b{i}.jpg").write_bytes(b"junk")
    image_io.save(tmp_path / "style.png", stripes())
    out = tmp_path / "m.jaxnst"
    argv = ["train", str(tmp_path / "style.png"), "--images", str(d), "-o", str(out), "--quiet"]
    assert command.main([*argv, *SMALL, "--steps", "3"]) == 2
    assert "could be used" in _one_line(capsys)
    assert not out.exists()


def test_train_resume_apply(tmp_path, folder, small_weights, capsys):
    out = tmp_path / "m.jaxnst"
    base = ["train", str(tmp_path / "style.png"), "--images", str(folder), "-o", str(out)]
    report = tmp_path / "train.json"
    assert command.main([*base, *SMALL, "--steps", "3", "--json", str(report), "--quiet"]) == 0
    r = json.loads(report.read_text())
    assert r["steps"] == 3 and r["styles"] == ["style"] and r["held_out_loss"]["style"] > 0
    # broken.jpg (held out) and the 8 px one (the 6 training files are all drawn in 3 steps)
    assert r["skipped"].startswith("skipped 2 images"), r["skipped"]
    assert command.main([*base, *SMALL, "--steps", "6", "--resume", "--quiet"]) == 0
    m = model_file.load(out)
    assert m.meta["steps"] == 6 and len(m.train["history"]) == 6

    inputs = [str(folder / "p0.png"), str(folder / "p1.png")]
    styled = tmp_path / "styled"
    js = tmp_path / "apply.json"
    assert command.main(["apply", str(out), *inputs, "-o", str(styled), "--json", str(js)]) == 0
    assert sorted(p.name for p in styled.iterdir()) == ["p0.png", "p1.png"]
    a = json.loads(js.read_text())
    assert a["seconds_per_image"] > 0 and a["images"] == 2
    one = tmp_path / "one.png"
    assert command.main(["apply", str(out), inputs[0], "-o", str(one), "--quiet"]) == 0
    np.testing.assert_allclose(image_io.load(one), image_io.load(styled / "p0.png"), atol=1 / 255)
    capsys.readouterr()

    bad = tmp_path / "cut.jaxnst"
    bad.write_bytes(out.read_bytes()[:1000])
    for model, what in ((bad, "truncated"), (folder / "p0.png", "not a jaxnst model file")):
        target = tmp_path / "never"
        assert command.main(["apply", str(model), *inputs, "-o", str(target)]) == 2
        assert what in _one_line(capsys)
        assert not target.exists()
    assert command.main(["apply", str(out), inputs[0], "-o", str(one), "--strength", "5"]) == 2
    assert "outside this model's trained range" in _one_line(capsys)


def test_video_through_a_model_is_each_frame_applied(tmp_path, capsys):
    pytest.importorskip("av")
    from jaxnst.feedforward import apply as ff_apply
    from jaxnst.feedforward.network import NetConfig, init_params

    net = NetConfig(0.25, 2, 1)
    import jax

    m = model_file.Model(jax.device_get(init_params(jax.random.PRNGKey(5), net)), net,
                         {"styles": ["a", "b"]})  # fmt: skip
    for q in m.params.values():  # styles that differ
        if "gamma" in q:
            q["gamma"] = q["gamma"] * np.float32([[[1.0]], [[0.3]]])
    path = model_file.save(tmp_path / "m.jaxnst", m)
    frames = tmp_path / "clip"
    frames.mkdir()
    clip = photos(3, 32, seed=7)
    for i, f in enumerate(clip):
        image_io.save(frames / f"frame_{i + 1:05d}.png", f)
    out = tmp_path / "styled"
    argv = ["video", str(frames), "b", "--model", str(path), "-o", str(out), "--size", "32"]
    assert command.main([*argv, "--batch", "2", "--quiet"]) == 0
    got = sorted(out.iterdir())
    assert len(got) == 3
    want = ff_apply.apply_style(m, np.stack([image_io.load(p) for p in sorted(frames.iterdir())]),
                                style="b")  # fmt: skip
    for g, w in zip(got, want):
        np.testing.assert_allclose(image_io.load(g), w, atol=1.5 / 255)
    assert command.main(["video", str(frames), "c", "--model", str(path), "-o", str(out)]) == 2
    assert "unknown style 'c'" in _one_line(capsys)
