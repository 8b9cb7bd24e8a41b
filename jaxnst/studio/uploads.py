"""Images from the page: an uploaded file or a bundled sample, decoded by :mod:`jaxnst.image_io`.

An upload is capped in bytes before it is decoded and in pixels after; it is decoded from a private
temporary folder that is removed at once, so a refused upload leaves nothing behind, and decodes
run one at a time (a large image takes ~12 bytes per pixel while it is converted to float). Bombs
(over Pillow's pixel limit), truncated files and non-images are refused with image_io's one-line
reason, naming the form field and the file's name as the client gave it (never a server path).
"""

from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from jaxnst import image_io
from jaxnst.studio.forms import MIN_SIDE, Limits

# One image at a time is decoded and resized: bounded memory, and the event loop's thread does not
# compete for the GIL with a crowd of decoding threads.
_IMAGE_WORK = threading.Lock()


class UploadError(ValueError):
    """A refused image: a one-line reason and the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Upload(Protocol):  # starlette.datastructures.UploadFile, without importing starlette here
    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


def body_limit(limits: Limits) -> int:
    """The most bytes a whole submission may have: two images and the option fields."""
    return 2 * limits.max_upload_bytes + 256 * 1024


def display_name(filename: str | None) -> str:
    """The client's file name for messages and the job's record: its last part, printable
    characters only, at most 80 (it is never used as a path)."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable())[:80]
    return name or "upload"


def decode(data: bytes, which: str, name: str, size: int, limits: Limits) -> np.ndarray:
    """Bytes of an image file -> float RGB (H, W, 3) in [0, 1], longer side ``size``.
    Raises UploadError."""
    label = f"{which} ({name})"
    with _IMAGE_WORK, tempfile.TemporaryDirectory(prefix="jaxnst-upload-") as d:
        p = Path(d) / "upload"
        p.write_bytes(data)
        try:
            im = image_io.load(p)
        except image_io.ImageError as e:
            raise UploadError(400, str(e).replace(str(p), label)) from None
        return _checked(im, label, size, limits)


def _checked(im: np.ndarray, label: str, size: int, limits: Limits) -> np.ndarray:
    h, w = im.shape[:2]
    if h * w > limits.max_pixels:
        raise UploadError(
            413, f"{label}: {w}x{h} px is over the limit of {limits.max_pixels} pixels"
        )
    if min(h, w) < MIN_SIDE:
        raise UploadError(
            400,
            f"{label}: {w}x{h} px is too small; VGG19's four poolings need "
            f"at least {MIN_SIDE} px per side",
        )
    return image_io.resize(im, size, min_side=MIN_SIDE).astype(np.float32)


def load_sample(path: Path, name: str, size: int, limits: Limits) -> np.ndarray:
    with _IMAGE_WORK:
        return _checked(image_io.load(path), name, size, limits)


async def image(
    which: str,
    upload: _Upload | None,
    sample: str | None,
    size: int,
    limits: Limits,
    sample_files: dict[str, Path],
) -> tuple[str, np.ndarray]:
    """The ``which`` image ("content" or "style") of a submission: an uploaded file (preferred
    when both are given) or a bundled sample by name. Returns (display name, image at ``size``).
    Decoding runs on a worker thread, off the event loop. Raises UploadError."""
    from starlette.concurrency import run_in_threadpool

    if upload is not None and upload.filename:
        data = await upload.read(limits.max_upload_bytes + 1)
        if len(data) > limits.max_upload_bytes:
            raise UploadError(
                413, f"{which}: the file is over the limit of {limits.max_upload_bytes} bytes"
            )
        if not data:
            raise UploadError(400, f"{which} ({display_name(upload.filename)}): empty file")
        name = display_name(upload.filename)
        return name, await run_in_threadpool(decode, data, which, name, size, limits)
    if sample:
        p = sample_files.get(sample)
        if p is None:
            raise UploadError(400, f"{which}_sample: no bundled sample named {sample[:40]!r}")
        return sample, await run_in_threadpool(load_sample, p, sample, size, limits)
    raise UploadError(400, f"{which}: choose an image (upload a file or pick a bundled sample)")


async def read_form(request, limits: Limits, max_files: int, max_fields: int) -> Any:
    """A request's multipart form, with its Content-Length checked first against the limits
    (413 over them, 411 without one); or an UploadError saying why not."""
    from starlette.exceptions import HTTPException

    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise UploadError(411, "a Content-Length header is required")
    if int(length) > body_limit(limits):
        raise UploadError(413, f"the upload is {int(length)} bytes; the limit is "
                               f"{limits.max_upload_bytes} bytes per image")  # fmt: skip
    try:
        return await request.form(
            max_files=max_files, max_fields=max_fields, max_part_size=64 * 1024
        )
    except HTTPException as e:
        raise UploadError(400, f"malformed form: {e.detail}") from None
