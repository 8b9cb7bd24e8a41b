"""Instant presets: the studio offers trained feed-forward networks (``jaxnst train``'s model
files in ``jaxnst serve --models DIR``) beside the descent. A preset answers in one network pass,
milliseconds to a second, so it runs in the request instead of the job queue:

    GET  /api/models     {"models": [{"name", "styles", "strengths": [low, high], "size",
                          "steps"}], "skipped": ["file: reason", ...]}
    POST /api/instant    multipart: content (file) or content_sample, model (a name from the
                         list), style (a style's name or index, or "a:0.5,b:0.5"), strength,
                         size (longer side, px) -> image/png; the header X-Jaxnst-Seconds is the
                         network's time
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jaxnst.studio import forms, uploads


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Presets:
    """The model files of a folder (none without one), loaded when first used and again when a
    file changes."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder).expanduser() if folder is not None else None
        self._loaded: dict[str, tuple[float, Any]] = {}

    def _files(self) -> dict[str, Path]:
        if self.folder is None or not self.folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.folder.glob("*.jaxnst")) if p.is_file()}

    def model(self, name: str) -> Any:
        """The named model (raises KeyError if there is none, ModelError if it is unreadable)."""
        from jaxnst.feedforward.model_file import load

        p = self._files()[name]
        mtime = p.stat().st_mtime
        if name not in self._loaded or self._loaded[name][0] != mtime:
            self._loaded[name] = (mtime, load(p))
        return self._loaded[name][1]

    def listing(self) -> dict[str, list]:
        from jaxnst.feedforward.model_file import ModelError

        models, skipped = [], []
        for name in self._files():
            try:
                m = self.model(name)
            except ModelError as e:
                skipped.append(f"{name}.jaxnst: {' '.join(str(e).split())}")
                continue
            models.append({"name": name, "styles": m.styles, "strengths": list(m.net.strengths),
                           "size": m.meta.get("size"), "steps": m.meta.get("steps")})  # fmt: skip
        return {"models": models, "skipped": skipped}


def _numbers(fields: dict[str, str], limits: forms.Limits) -> tuple[int, float | None]:
    try:
        size = int(fields.get("size") or forms.SIZE_DEFAULT)
        strength = float(fields["strength"]) if fields.get("strength") else None
    except ValueError:
        raise forms.FormError("size and strength must be numbers") from None
    if not forms.MIN_SIDE <= size <= limits.max_size:
        raise forms.FormError(f"size must be {forms.MIN_SIDE}..{limits.max_size} px, got {size}")
    return size, strength


def _render(model: Any, image: np.ndarray, style: str | None, strength: float | None) -> tuple:
    from jaxnst.feedforward.apply import apply_style, parse_style
    from jaxnst.image_io import to_uint8

    t = time.perf_counter()
    out = apply_style(model, image, style=parse_style(style, model.styles), strength=strength)
    seconds = time.perf_counter() - t
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(out)).save(buf, format="PNG")
    return buf.getvalue(), seconds


async def instant(request: Request, presets: Presets, limits: forms.Limits,
                  sample_files: dict[str, Path]) -> Response:  # fmt: skip
    """POST /api/instant (see the module doc)."""
    from jaxnst.feedforward.model_file import ModelError

    try:
        form = await uploads.read_form(request, limits, max_files=1, max_fields=16)
    except uploads.UploadError as e:
        return _error(e.status, str(e))
    try:
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        try:
            model = presets.model(fields.get("model", ""))
        except KeyError:
            return _error(404, f"model: no preset named {fields.get('model', '')[:40]!r}")
        except ModelError as e:
            return _error(400, " ".join(str(e).split()))
        try:
            size, strength = _numbers(fields, limits)
            upload = form.get("content")
            _, image = await uploads.image(
                "content", upload if isinstance(upload, UploadFile) else None,
                fields.get("content_sample"), size, limits, sample_files,
            )  # fmt: skip
            png, seconds = await run_in_threadpool(
                _render, model, image, fields.get("style"), strength
            )
        except uploads.UploadError as e:
            return _error(e.status, str(e))
        except (forms.FormError, ValueError, ModelError) as e:
            return _error(400, " ".join(str(e).split()))
    finally:
        await form.close()
    headers = {"X-Jaxnst-Seconds": f"{seconds:.4f}", "Cache-Control": "no-store"}
    return Response(png, media_type="image/png", headers=headers)


def routes(presets: Presets, limits: forms.Limits, sample_files: dict[str, Path]) -> list:
    async def listing(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(presets.listing))

    async def post(request: Request) -> Response:
        return await instant(request, presets, limits, sample_files)

    return [Route("/api/models", listing), Route("/api/instant", post, methods=["POST"])]
