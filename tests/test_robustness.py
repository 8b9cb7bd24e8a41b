"""Hostile and unusual inputs: the loader and the option checks raise only their documented errors
(ImageError, ValueError), and the CLI turns each into one line and exit code 2."""

import io
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from jaxnst import image_io
from jaxnst.cli import command as cli
from jaxnst.stylize import make_options

MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mode=st.sampled_from(MODES),
    w=st.integers(1, 40),
    h=st.integers(1, 40),
    fmt=st.sampled_from(["PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP"]),
    cut=st.one_of(st.none(), st.integers(0, 400)),
    seed=st.integers(0, 2**16),
)
def test_loader_raises_only_image_error(tmp_path_factory, mode, w, h, fmt, cut, seed):
    rng = np.random.default_rng(seed)
    im = Image.fromarray((rng.uniform(size=(h, w, 3)) * 255).astype(np.uint8)).convert(
        mode if mode not in ("I;16", "I", "F") else "L"
    )
    if mode in ("I;16", "I", "F"):
        im = (
            im.convert(mode)
            if mode != "I;16"
            else Image.fromarray((rng.uniform(size=(h, w)) * 65535).astype(np.uint16))
        )
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot hold this mode; nothing to test
    data = buf.getvalue() if cut is None else buf.getvalue()[:cut]
    p = tmp_path_factory.mktemp("h") / f"x.{fmt.lower()}"
    p.write_bytes(data)
    try:
        out = image_io.load(p)
    except image_io.ImageError as e:
        assert "\n" not in str(e) and str(p) in str(e)
        return
    assert out.dtype == np.float32 and out.ndim == 3 and out.shape[2] == 3
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "iterations",
                "optimizer",
                "learning_rate",
                "content_weight",
                "style_weight",
                "tv_weight",
                "init",
                "seed",
                "pooling",
                "content_layers",
                "style_layers",
                "chunk",
                "linesearch",
                "bogus",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-5, 10**6),
            st.floats(allow_nan=True),
            st.text(max_size=8),
            st.lists(st.floats(allow_nan=True), max_size=3),
            st.lists(st.sampled_from(["conv1_1", "conv4_2", "conv9_9", ""]), max_size=3),
        ),
        max_size=4,
    )
)
def test_option_validation_raises_only_value_error(opts):
    try:
        make_options(**opts)
    except ValueError as e:
        assert "\n" not in str(e)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.new("RGB", (64, 64)).save(tmp_path / "b.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 2 + 1)  # warning zone, not error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(image_io.ImageError, match="too large"):
            image_io.load(tmp_path / "b.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # error zone
    with pytest.raises(image_io.ImageError, match="too large"):
        image_io.load(tmp_path / "b.png")


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(
        (np.random.default_rng(0).uniform(size=(64, 64, 3)) * 255).astype(np.uint8)
    ).save(buf, "JPEG")
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(image_io.ImageError, match="t.jpg"):
        image_io.load(tmp_path / "t.jpg")


def test_wide_and_tall_images_keep_16_px(rng):
    wide = rng.uniform(size=(20, 2000, 3)).astype(np.float32)
    r = image_io.resize(wide, 512, min_side=16)
    assert r.shape[0] == 16 and r.shape[1] == 1600
    tall = np.swapaxes(wide, 0, 1)
    assert image_io.resize(tall, 512, min_side=16).shape[:2] == (1600, 16)


@pytest.mark.parametrize("size", [(8, 40), (40, 10)])
def test_cli_names_too_small_images(tmp_path, capsys, size):
    Image.new("RGB", size).save(tmp_path / "tiny.png")
    Image.new("RGB", (40, 40)).save(tmp_path / "ok.png")
    for args in (["tiny.png", "ok.png"], ["ok.png", "tiny.png"]):
        code = cli.main([str(tmp_path / a) for a in args] + ["-o", str(tmp_path / "o.png")])
        err = capsys.readouterr().err
        assert code == 2 and "at least 16 px per side" in err and "tiny.png" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    with pytest.raises(image_io.ImageError, match="not writable"):
        image_io.check_output_path(d / "o.png")
