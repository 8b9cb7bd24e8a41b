import io
import os

import numpy as np
import pytest
from PIL import Image

from jaxnst import image_io


def write(path, im, **kw):
    im.save(path, **kw)
    return path


def test_rgb_roundtrip(tmp_path, rng):
    a = (rng.uniform(size=(10, 12, 3)) * 255).astype(np.uint8)
    p = write(tmp_path / "a.png", Image.fromarray(a))
    got = image_io.load(p)
    assert got.dtype == np.float32 and got.shape == (10, 12, 3)
    np.testing.assert_allclose(got, a / 255.0, atol=1e-6)


def test_grayscale_palette_and_alpha(tmp_path):
    g = write(tmp_path / "g.png", Image.fromarray(np.full((4, 5), 100, np.uint8), "L"))
    np.testing.assert_allclose(image_io.load(g), 100 / 255.0, atol=1e-6)
    pal = Image.fromarray(np.full((4, 5, 3), (200, 10, 30), np.uint8)).quantize(4)
    np.testing.assert_allclose(
        image_io.load(write(tmp_path / "p.png", pal))[0, 0],
        np.array([200, 10, 30]) / 255.0,
        atol=1e-6,
    )
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :2, 3] = 255  # left opaque red, right fully transparent
    got = image_io.load(write(tmp_path / "a.png", Image.fromarray(rgba, "RGBA")))
    np.testing.assert_allclose(got[0, 0], [1, 0, 0])
    np.testing.assert_allclose(got[0, 4], [1, 1, 1])  # transparent becomes white
    la = Image.fromarray(
        np.stack([np.full((4, 5), 0, np.uint8), np.full((4, 5), 128, np.uint8)], -1), "LA"
    )
    np.testing.assert_allclose(
        image_io.load(write(tmp_path / "la.png", la))[0, 0], 127 / 255, atol=1e-2
    )


def test_sixteen_bit_is_not_clipped(tmp_path):
    a = np.array([[0, 1000, 30000, 65535]], np.uint16)
    p = write(tmp_path / "16.png", Image.fromarray(a))
    got = image_io.load(p)
    np.testing.assert_allclose(got[0, :, 0], a[0] / 65535.0, atol=1e-6)


def test_cmyk_jpeg(tmp_path):
    im = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    got = image_io.load(write(tmp_path / "c.jpg", im, quality=95))
    assert got[4, 4, 0] > 0.9 and got[4, 4, 1] < 0.15 and got[4, 4, 2] < 0.15


def test_exif_orientation_applied(tmp_path):
    a = np.zeros((4, 8, 3), np.uint8)
    a[:, :4] = 255  # left half white in the stored pixels
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    p = tmp_path / "r.jpg"
    im.save(p, exif=exif, quality=95)
    got = image_io.load(p)
    assert got.shape == (8, 4, 3)  # comes out upright (portrait)
    assert got[1, 1].mean() > 0.8 and got[6, 1].mean() < 0.2  # white half now on top


@pytest.mark.parametrize(
    "content, msg",
    [
        (None, "no such file"),
        (b"", "empty file"),
        (b"hello, I am text", "not a readable image"),
    ],
)
def test_bad_files(tmp_path, content, msg):
    p = tmp_path / "x.png"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(image_io.ImageError, match=msg):
        image_io.load(p)


def test_truncated_png_and_directory(tmp_path, rng):
    buf = io.BytesIO()
    Image.fromarray((rng.uniform(size=(64, 64, 3)) * 255).astype(np.uint8)).save(buf, "PNG")
    (tmp_path / "t.png").write_bytes(buf.getvalue()[:300])
    with pytest.raises(image_io.ImageError, match="t.png"):
        image_io.load(tmp_path / "t.png")
    with pytest.raises(image_io.ImageError, match="is a directory"):
        image_io.load(tmp_path)


def test_resize_keeps_aspect_and_range(rng):
    a = rng.uniform(size=(30, 60, 3)).astype(np.float32)
    r = image_io.resize(a, 20)
    assert r.shape == (10, 20, 3) and r.min() >= 0 and r.max() <= 1
    assert image_io.resize(a, shape=(7, 9)).shape == (7, 9, 3)
    # Area-average sanity: a constant image stays constant.
    np.testing.assert_allclose(
        image_io.resize(np.full((30, 60, 3), 0.3, np.float32), 17), 0.3, atol=1e-4
    )


def test_save_formats_and_atomicity(tmp_path, rng, monkeypatch):
    a = rng.uniform(size=(6, 7, 3)).astype(np.float32)
    image_io.save(tmp_path / "o.png", a)
    image_io.save(tmp_path / "o.JPG", a)
    assert Image.open(tmp_path / "o.png").format == "PNG"
    assert Image.open(tmp_path / "o.JPG").format == "JPEG"
    np.testing.assert_allclose(image_io.load(tmp_path / "o.png"), a, atol=0.5 / 255 + 1e-6)
    before = (tmp_path / "o.png").read_bytes()

    def boom(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        image_io.save(tmp_path / "o.png", a * 0)
    assert (tmp_path / "o.png").read_bytes() == before  # not clobbered
    assert sorted(os.listdir(tmp_path)) == ["o.JPG", "o.png"]  # no temporary left behind


@pytest.mark.parametrize(
    "name, msg",
    [
        ("o.bmpx", "unknown output extension"),
        ("missing/o.png", "does not exist"),
        ("o", "unknown"),
    ],
)
def test_output_path_checks(tmp_path, name, msg):
    with pytest.raises(image_io.ImageError, match=msg):
        image_io.check_output_path(tmp_path / name)
