"""Colour fidelity for print (issue 13): ICC inputs become sRGB, outputs are tagged sRGB, and
``depth=16`` writes a 48-bit PNG that keeps more than 256 levels."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from jaxnst import image_io
from jaxnst.cli import command as cli

# D50-adapted primaries (columns: R, G, B -> XYZ), as published for the ICC versions of the spaces.
ADOBE = np.array(
    [
        [0.6097559, 0.2052401, 0.1492240],
        [0.3111242, 0.6256560, 0.0632197],
        [0.0194811, 0.0608902, 0.7448387],
    ]
)
SRGB = np.array(
    [
        [0.4360747, 0.3850649, 0.1430804],
        [0.2225045, 0.7168786, 0.0606169],
        [0.0139322, 0.0971045, 0.7141733],
    ]
)
GAMMA = 563 / 256  # Adobe RGB (1998)'s transfer curve


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def adobe_rgb_icc() -> bytes:
    """A minimal ICC v2 matrix/TRC display profile for Adobe RGB (1998), built byte by byte."""
    xyz = lambda v: b"XYZ \0\0\0\0" + b"".join(_s15(x) for x in v)  # noqa: E731
    text = b"Adobe RGB test\0"
    desc = (
        b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0\0\0" + b"\0" * 67
    )
    curv = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(GAMMA * 256)) + b"\0\0"
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz((0.9642, 1.0, 0.8249))),
        (b"cprt", b"text\0\0\0\0none\0"),
    ]
    tags += [(s, xyz(ADOBE[:, i])) for i, s in enumerate((b"rXYZ", b"gXYZ", b"bXYZ"))]
    tags += [(s, curv) for s in (b"rTRC", b"gTRC", b"bTRC")]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
    )
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def _srgb_encode(lin):
    lin = np.clip(lin, 0, 1)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def test_adobe_rgb_input_is_converted_to_srgb(tmp_path):
    rng = np.random.default_rng(0)
    adobe = rng.integers(40, 216, (16, 16, 3)).astype(np.uint8)
    path = tmp_path / "adobe.png"
    Image.fromarray(adobe).save(path, icc_profile=adobe_rgb_icc())
    got = image_io.load(path)
    lin = (adobe / 255.0) ** GAMMA
    want = _srgb_encode(np.einsum("ij,hwj->hwi", np.linalg.inv(SRGB) @ ADOBE, lin))
    inside = ((want > 0.02) & (want < 0.98)).all(-1)
    assert inside.mean() > 0.5
    assert np.abs(got - want)[inside].max() < 3 / 255
    # Not a no-op: Adobe RGB's wider gamut makes the same numbers more saturated in sRGB.
    assert np.abs(got - adobe / 255.0)[inside].max() > 10 / 255
    # Without the profile the values are taken as sRGB already.
    Image.fromarray(adobe).save(tmp_path / "plain.png")
    np.testing.assert_allclose(image_io.load(tmp_path / "plain.png"), adobe / 255.0, atol=1e-6)


def _profile_description(path) -> str:
    with Image.open(path) as im:
        icc = im.info.get("icc_profile")
    assert icc, "no ICC profile in the output"
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))


@pytest.mark.parametrize("name", ["out.png", "out.jpg"])
def test_outputs_are_tagged_srgb(tmp_path, name):
    image_io.save(tmp_path / name, np.full((8, 8, 3), 0.5, np.float32))
    assert "sRGB" in _profile_description(tmp_path / name)


def _read_png16(data: bytes) -> tuple[np.ndarray, dict]:
    """Independent minimal PNG reader for 16-bit RGB (the PNG specification's five row filters,
    undone row by row; OpenCV's encoder picks them adaptively)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, idat = 8, {}, b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0] == zlib.crc32(kind + body)
        idat += body if kind == b"IDAT" else b""
        chunks[kind] = body
        pos += 12 + n
    w, h, depth, ctype = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, ctype) == (16, 2)
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 6 * w)
    bpp, prev, rows = 6, np.zeros(6 * w, np.int64), []
    for r in range(h):
        kind, line = raw[r, 0], raw[r, 1:].astype(np.int64)
        out = np.zeros_like(line)
        for i in range(line.size):
            a = out[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if kind == 4:  # Paeth
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)  # |p - a|, |p - b|, |p - c|
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                pred = [0, a, b, (a + b) // 2][kind]
            out[i] = (line[i] + pred) % 256
        rows.append(out)
        prev = out
    return np.stack(rows).astype(np.uint8).view(">u2").reshape(h, w, 3), chunks


def test_16_bit_png_keeps_more_than_256_levels(tmp_path):
    ramp = np.linspace(0, 1, 2000, dtype=np.float32)
    image = np.stack([ramp, ramp[::-1], np.full_like(ramp, 0.25)], -1)[None].repeat(3, 0)
    out = image_io.save(tmp_path / "deep.png", image, depth=16)
    values, chunks = _read_png16(out.read_bytes())
    assert len(np.unique(values[..., 0])) > 1000
    np.testing.assert_allclose(values / 65535.0, image, atol=0.51 / 65535)
    assert b"iCCP" in chunks and "sRGB" in _profile_description(out)
    with Image.open(out) as im:  # an ordinary reader opens it too
        assert im.size == (2000, 3)


def test_16_bit_needs_png_and_the_cli_refuses_before_work(tmp_path, capsys):
    with pytest.raises(image_io.ImageError, match="16-bit"):
        image_io.check_output_path(tmp_path / "x.jpg", 16)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "c.png")
    out = tmp_path / "o.jpg"
    code = cli.main(
        [str(tmp_path / "c.png"), str(tmp_path / "c.png"), "-o", str(out), "--output-depth", "16"]
    )
    assert code == 2 and not out.exists()
    assert "16-bit" in capsys.readouterr().err


def test_16_bit_tiff_keeps_more_than_256_levels_and_the_profile(tmp_path):
    """--output-depth 16 to a .tif: 16 bits per channel rounded once from the floats, RGB in
    order, tagged sRGB (tifffile writes it; read back by its reader, the values our rounding)."""
    tifffile = pytest.importorskip("tifffile")
    ramp = np.linspace(0, 1, 2000, dtype=np.float32)
    image = np.stack([ramp, ramp[::-1], np.full_like(ramp, 0.25)], -1)[None].repeat(3, 0)
    out = image_io.save(tmp_path / "deep.tif", image, depth=16)
    with tifffile.TiffFile(out) as t:
        page = t.pages[0]
        values = page.asarray()
        assert page.bitspersample == 16 and page.photometric == tifffile.PHOTOMETRIC.RGB
        assert "InterColorProfile" in page.tags
    assert values.dtype == np.uint16 and len(np.unique(values[..., 0])) > 1000
    np.testing.assert_array_equal(values, np.floor(np.clip(image, 0, 1) * 65535.0 + 0.5))
    assert "sRGB" in _profile_description(out)
    with Image.open(out) as im:  # an ordinary reader opens it too
        assert im.size == (2000, 3)
    with pytest.raises(image_io.ImageError, match="16-bit"):
        image_io.check_output_path(tmp_path / "x.jpeg", 16)


def test_16_bit_without_its_library_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(image_io, "find_spec", lambda name: None)
    for name, lib in (("x.png", "cv2"), ("x.tiff", "tifffile")):
        with pytest.raises(image_io.ImageError, match=lib) as e:
            image_io.check_output_path(tmp_path / name, 16)
        assert "pip install 'jaxnst[print]'" in str(e.value)
    image_io.check_output_path(tmp_path / "x.png", 8)  # 8 bits need neither
