"""Reading and writing clips: video files (PyAV), frame folders, audio passthrough, bad input."""

import fractions

import numpy as np
import pytest

from jaxnst import image_io
from jaxnst.video import synthetic

av = pytest.importorskip("av")
from jaxnst.video import io as vio  # noqa: E402


@pytest.fixture(scope="module")
def clip():
    return synthetic.pan(5, (32, 48)).frames


def _with_audio(path, frames, fps=10, seconds=None):
    """An .mp4 with H.264 video and an AAC sine tone (so the audio can be checked)."""
    rate = 22050
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        a = out.add_stream("aac", rate=rate)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(image_io.to_uint8(f), format="rgb24")
            vf.pts, vf.time_base = i, fractions.Fraction(1, fps)
            for p in v.encode(vf):
                out.mux(p)
        n = int(rate * (seconds or len(frames) / fps))
        t = np.arange(n) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        af.sample_rate, af.pts, af.time_base = rate, 0, fractions.Fraction(1, rate)
        for p in a.encode(af):
            out.mux(p)
        for s in (v, a):
            for p in s.encode(None):
                out.mux(p)


@pytest.mark.parametrize("suffix,tol", [(".mp4", 0.06), (".gif", 0.08), ("", 1 / 255)])
def test_roundtrip(tmp_path, clip, suffix, tol):
    out = tmp_path / f"out{suffix}"
    vio.write(out, list(clip), fps=10)  # (GIF delays are in 1/100 s)
    back = vio.read(out)
    assert back.frames.shape == clip.shape and back.frames.dtype == np.float32
    assert np.abs(back.frames - clip).mean() < tol
    if suffix:
        assert back.fps == pytest.approx(10, rel=0.01)
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries
    part = vio.read(out, start=1, max_frames=2)
    assert part.frames.shape[0] == 2 and part.start == 1
    np.testing.assert_allclose(part.frames, back.frames[1:3], atol=0.02)


def test_odd_size_mp4_is_padded(tmp_path, rng):
    frames = rng.random((3, 17, 23, 3)).astype(np.float32)
    vio.write(tmp_path / "o.mp4", list(frames), fps=5)
    assert vio.read(tmp_path / "o.mp4").frames.shape == (3, 18, 24, 3)


def test_audio_is_kept_and_trimmed(tmp_path, clip):
    src = tmp_path / "in.mp4"
    _with_audio(src, np.concatenate([clip, clip]), fps=10)  # 10 frames, 1 s of tone
    c = vio.read(src, start=2, max_frames=5, size=40)
    assert c.audio and c.frames.shape == (5, 27, 40, 3) and c.fps == pytest.approx(10)
    out = tmp_path / "out.mp4"
    vio.write(out, list(c.frames), fps=c.fps, audio=c)
    with av.open(str(out)) as o:
        assert len(o.streams.audio) == 1 and o.streams.audio[0].codec_context.name == "aac"
        audio = np.concatenate([f.to_ndarray()[0] for f in o.decode(audio=0)])  # channel 0
    assert 0.4 * 22050 <= audio.size <= 0.6 * 22050 + 2048  # 5 frames at 10 fps: ~0.5 s
    assert 0.1 < np.sqrt(np.mean(audio**2)) < 0.3  # the tone, not silence
    vio.write(tmp_path / "other.mp4", list(c.frames), fps=25, audio=c)  # rate changed: no audio
    with av.open(str(tmp_path / "other.mp4")) as o:
        assert not o.streams.audio


def test_folder_order_and_sizes(tmp_path, clip):
    d = tmp_path / "frames"
    d.mkdir()
    for i in (10, 9, 8, 1):  # natural order, not lexicographic
        image_io.save(d / f"f{i}.png", clip[i % 5])
    c = vio.read(d)
    np.testing.assert_allclose(c.frames, clip[[1, 3, 4, 0]], atol=1 / 255)
    image_io.save(d / "f11.png", np.zeros((20, 20, 3), np.float32))
    with pytest.raises(vio.VideoError, match="f11.png.*share one size"):
        vio.read(d)


def _truncated(tmp_path, clip):
    full = tmp_path / "full.mp4"
    vio.write(full, list(clip), fps=10)
    data = full.read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 2])
    return p


@pytest.mark.parametrize(
    "case", ["missing", "empty", "corrupt", "truncated", "no_frames", "audio_only"]
)
def test_bad_input_is_one_line_naming_the_file(tmp_path, clip, case):
    p = tmp_path / "in.mp4"
    if case == "empty":
        p.write_bytes(b"")
    elif case == "corrupt":
        p.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    elif case == "truncated":
        p = _truncated(tmp_path, clip)
    elif case == "no_frames":
        p = tmp_path / "dir"
        p.mkdir()
        (p / "notes.txt").write_text("x")
    elif case == "audio_only":
        p = tmp_path / "a.m4a"
        with av.open(str(p), "w", format="mp4") as out:
            a = out.add_stream("aac", rate=8000)
            af = av.AudioFrame.from_ndarray(
                np.zeros((1, 8000), np.float32), format="fltp", layout="mono"
            )
            af.sample_rate = 8000
            for pk in list(a.encode(af)) + list(a.encode(None)):
                out.mux(pk)
    with pytest.raises(vio.VideoError) as e:
        vio.read(p)
    msg = str(e.value)
    assert str(p) in msg and "\n" not in msg


def test_output_kinds(tmp_path):
    assert vio.output_kind(tmp_path / "a.mp4") == "mp4"
    assert vio.output_kind(tmp_path / "a.GIF") == "gif"
    assert vio.output_kind(tmp_path / "frames") == "folder"
    for bad, match in [
        (tmp_path / "a.avi", "unknown output extension"),
        (tmp_path / "no" / "a.mp4", "does not exist"),
    ]:
        with pytest.raises(vio.VideoError, match=match):
            vio.output_kind(bad)
