"""Image files in and out. The only module that imports PIL.

``load`` returns RGB float32 (H, W, 3) in [0, 1]: EXIF orientation applied; grayscale, palette and
CMYK converted to RGB; alpha composited over white (a transparent pixel becomes white, as it
looks in most viewers); 16-bit images scaled from 0..65535 without clipping. ``save`` picks the
format from the extension (.png, .jpg/.jpeg, .tif/.tiff) and writes atomically: a temporary file in
the same directory, then a rename, so an interrupted write never leaves a half-written or clobbered
file.

Colour: an input carrying an ICC profile (Adobe RGB, Display P3, a CMYK press profile...) is
converted to sRGB on load (littleCMS through Pillow's ImageCms, relative colorimetric), since VGG
and the losses see sRGB values; outputs carry an sRGB ICC profile. ``save(..., depth=16)`` writes
a 48-bit PNG (OpenCV) or TIFF (tifffile) straight from the float image (no 8-bit step), for print;
those two libraries are the ``print`` extra: ``pip install 'jaxnst[print]'``.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

from jaxnst._atomic import atomic_path

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
# 16 bits per channel: the library that writes each format (Pillow writes RGB with 8 bits only).
DEEP = {"PNG": "cv2", "TIFF": "tifffile"}
PRINT_EXTRA = "pip install 'jaxnst[print]'"


class ImageError(ValueError):
    """An image file can't be read or written. The message is one line naming the file."""


def _to_float_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im).astype(np.float32)
        a = a / (65535.0 if a.max(initial=0) > 255 or mode.startswith("I;16") else 255.0)
        return np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=-1)
    if mode == "F":
        a = np.asarray(im, np.float32)
        return np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=-1)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (1.0 - alpha)
    if mode in ("RGB;16", "BGR;16"):
        im = im.convert("RGB")
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, np.float32) / 255.0


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _to_srgb(im: Image.Image) -> Image.Image:
    """An RGB/RGBA/CMYK image with an embedded ICC profile, converted to sRGB (RGB or RGBA).
    Without a profile, or with one littleCMS can't read, the values are taken as sRGB already."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return im
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        dst = ImageCms.createProfile("sRGB")
        mode = "RGBA" if im.mode == "RGBA" else "RGB"
        intent = ImageCms.Intent.RELATIVE_COLORIMETRIC
        out = ImageCms.profileToProfile(im, src, dst, renderingIntent=intent, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im
    return out if out is not None else im


def load(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB float32 (H, W, 3) in [0, 1]. Raises ImageError."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory, expected an image file")
    if p.stat().st_size == 0:
        raise ImageError(f"{p}: empty file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; we refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as opened:
                im = ImageOps.exif_transpose(opened)
                im.load()
                return _to_float_rgb(_to_srgb(im))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{p}: image too large (over Pillow's limit of "
            f"{Image.MAX_IMAGE_PIXELS} pixels; decompression bomb?)"
        ) from None
    except MemoryError:
        raise ImageError(f"{p}: image too large to decode in memory") from None
    except Exception as e:  # corrupt files raise OSError, SyntaxError, struct.error, EOFError...
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise ImageError(f"{p}: not a readable image ({detail})") from None


def load_short_side(path: str | os.PathLike, short_side: int, min_short: int = 1) -> np.ndarray:
    """Read an image as RGB float32 (H, W, 3) in [0, 1] with its shorter side resized to
    ``short_side`` px (bilinear; JPEGs are decoded at a reduced scale first, which is most of the
    speed of a training loader). ImageError if it is unreadable or its shorter side is below
    ``min_short`` px (too small to crop from without blowing it up)."""
    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as opened:
                w, h = opened.size
                if min(w, h) < min_short:
                    raise ImageError(f"{p}: {w}x{h} px is too small (shorter side < {min_short})")
                s = short_side / min(w, h)
                if s < 1.0:
                    opened.draft("RGB", (max(1, int(w * s)), max(1, int(h * s))))
                im = _to_srgb(ImageOps.exif_transpose(opened))
                im.load()
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 (corrupt files raise many kinds of errors)
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise ImageError(f"{p}: not a readable image ({detail})") from None
    w, h = im.size
    s = short_side / min(w, h)
    shape = (max(short_side, round(w * s)), max(short_side, round(h * s)))
    if im.mode == "RGB":
        return np.asarray(im.resize(shape, Image.Resampling.BILINEAR), np.float32) / 255.0
    return resize(_to_float_rgb(im), shape=(shape[1], shape[0]))


def resize(
    image: np.ndarray,
    max_side: int | None = None,
    *,
    shape: tuple[int, int] | None = None,
    min_side: int = 1,
) -> np.ndarray:
    """Resize float (H, W, 3) so its longer side is ``max_side`` (or to ``shape`` = (H, W)), with a
    Lanczos filter per channel in float (no 8-bit rounding). For very wide or tall images the
    shorter side is kept at ``min_side`` at least, so the longer side may exceed ``max_side``."""
    h, w = image.shape[:2]
    if shape is None:
        if max_side is None:
            return image
        s = max(max_side / max(h, w), min_side / min(h, w))
        shape = (max(1, round(h * s)), max(1, round(w * s)))
    if tuple(shape) == (h, w):
        return image
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), "F").resize(
                (shape[1], shape[0]), Image.Resampling.LANCZOS
            )
        )
        for c in range(image.shape[-1])
    ]
    return np.clip(np.stack(chans, -1), 0.0, 1.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def check_output_path(path: str | os.PathLike, depth: int = 8) -> Path:
    """Validate an output path (and bit depth, 8 or 16) before any work is done. Raises
    ImageError."""
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise ImageError(
            f"{p}: unknown output extension {p.suffix or '(none)'!r}; "
            f"expected one of {', '.join(FORMATS)}"
        )
    if depth not in (8, 16):
        raise ImageError(f"{p}: output depth must be 8 or 16, got {depth!r}")
    fmt = FORMATS[p.suffix.lower()]
    if depth == 16 and fmt not in DEEP:
        raise ImageError(f"{p}: 16-bit output needs a .png or .tif file (JPEG is 8-bit only)")
    if depth == 16 and find_spec(DEEP[fmt]) is None:
        raise ImageError(f"{p}: 16-bit {fmt} output needs {DEEP[fmt]}: {PRINT_EXTRA}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ImageError(f"{p}: directory {parent} does not exist")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ImageError(f"{p}: not writable")
    return p


def save(path: str | os.PathLike, image: np.ndarray, quality: int = 95, depth: int = 8) -> Path:
    """Write RGB float (H, W, 3) in [0, 1] (or uint8) atomically, tagged sRGB; format from the
    extension. ``depth`` 16 (PNG or TIFF) writes 16 bits per channel from the float values."""
    p = check_output_path(path, depth)
    fmt = FORMATS[p.suffix.lower()]
    if depth == 16 and image.dtype != np.uint8:
        data = (png16_bytes if fmt == "PNG" else tiff16_bytes)(np.asarray(image, np.float32))
        with atomic_path(p, 0o666 & ~_umask()) as tmp:
            Path(tmp).write_bytes(data)
        return p
    a = image if image.dtype == np.uint8 else to_uint8(image)
    with atomic_path(p, 0o666 & ~_umask()) as tmp:
        kw = {"quality": quality} if fmt == "JPEG" else {}
        Image.fromarray(a, "RGB").save(tmp, format=fmt, icc_profile=_srgb_profile(), **kw)
    return p


def _to_uint16(image: np.ndarray) -> np.ndarray:
    """Float RGB [0, 1] -> uint16, rounded once from the floats."""
    return (np.clip(image, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


def png16_bytes(image: np.ndarray) -> bytes:
    """A 48-bit PNG of float RGB (H, W, 3) in [0, 1], encoded by OpenCV, with an sRGB ICC profile
    (an ``iCCP`` chunk after the header: OpenCV writes no colour information)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(_to_uint16(image)[..., ::-1]))
    if not ok:
        raise ImageError("OpenCV could not encode a 16-bit PNG")
    data = buf.tobytes()
    end_of_header = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, 13 bytes, CRC
    iccp = b"sRGB\0\0" + zlib.compress(_srgb_profile())
    chunk = struct.pack(">I", len(iccp)) + b"iCCP" + iccp
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + iccp))
    return data[:end_of_header] + chunk + data[end_of_header:]


def tiff16_bytes(image: np.ndarray) -> bytes:
    """A 48-bit TIFF of float RGB (H, W, 3) in [0, 1] (tifffile; deflate; sRGB ICC profile)."""
    import tifffile

    out = io.BytesIO()
    tifffile.imwrite(
        out, _to_uint16(image), photometric="rgb", compression="zlib", iccprofile=_srgb_profile()
    )
    return out.getvalue()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def contact_sheet(
    tiles: list[np.ndarray],
    labels: list[str],
    columns: int | None = None,
    tile: int = 256,
    label_height: int = 34,
) -> np.ndarray:
    """Labelled tiles on a white sheet: uint8 (H, W, 3). Each tile (float RGB [0, 1]) is scaled to
    fit a ``tile`` x ``tile`` box; labels may have two lines."""
    from PIL import ImageDraw

    n = len(tiles)
    columns = columns or min(n, 4)
    rows = -(-n // columns)
    pad = 6
    sheet = Image.new(
        "RGB", (columns * (tile + pad) + pad, rows * (tile + label_height + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    for i, (t, label) in enumerate(zip(tiles, labels)):
        im = Image.fromarray(to_uint8(t))
        scale = tile / max(im.size)
        im = im.resize(
            (max(1, round(im.width * scale)), max(1, round(im.height * scale))),
            Image.Resampling.LANCZOS,
        )
        x = pad + (i % columns) * (tile + pad)
        y = pad + (i // columns) * (tile + label_height + pad)
        sheet.paste(im, (x + (tile - im.width) // 2, y + (tile - im.height) // 2))
        draw.multiline_text((x + 2, y + tile + 3), label, fill="black", font=font, spacing=2)
    return np.asarray(sheet)


PLOTS_EXTRA = "pip install 'jaxnst[plots]'"


def can_plot() -> bool:
    """Whether :func:`loss_plot` can draw (matplotlib, the ``plots`` extra, is installed)."""
    return find_spec("matplotlib") is not None


def loss_plot(
    steps: np.ndarray,
    curves: list[np.ndarray],
    labels: list[str],
    title: str = "loss",
    size: tuple[int, int] = (560, 380),
) -> np.ndarray:
    """A log-scale line plot of each curve against ``steps`` (iterations), with a legend:
    uint8 RGB (H, W, 3) of ``size`` (width, height) px. Drawn by matplotlib (``plots`` extra);
    non-finite and non-positive values are left out, and at most four decades are shown (a
    near-zero start would squash the rest)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = np.asarray(steps, np.float64)
    top = 0.0
    for c, label in zip(curves, labels):
        c = np.asarray(c, np.float64)
        ok = np.isfinite(c) & (c > 0)
        ax.plot(steps[ok], c[ok], label=label, linewidth=1.5)
        top = max(top, c[ok].max(initial=0.0))
    ax.set_yscale("log")
    if top > 0:
        ax.set_ylim(bottom=max(ax.get_ylim()[0], top * 1e-4))
    ax.set_xlabel("iteration")
    ax.set_title(f"{title} (log scale)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
