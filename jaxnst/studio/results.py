"""What a studio job shows while it runs (previews, progress) and leaves behind (images, report).

Everything here works on a :class:`jaxnst.stylize.Result` and the job's record; files go through
:class:`~jaxnst.studio.store.Store` (atomic writes).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from jaxnst import image_io
from jaxnst.stylize import make_options, sweep_grid

if TYPE_CHECKING:
    from jaxnst.studio.store import Store
    from jaxnst.stylize import Result


class Job(Protocol):
    """What this module reads of a :class:`jaxnst.studio.jobs.Job` (which imports this module)."""

    record: dict[str, Any]
    content: np.ndarray | None
    style: np.ndarray | None
    options: dict[str, Any]
    feed: Any
    stop: Any

    @property
    def id(self) -> str: ...


def _finite(v: Any) -> float | None:
    """A float for JSON (which has no NaN or infinity): None where not finite."""
    f = float(v)
    return f if math.isfinite(f) else None


def _label(name: str, value: float) -> str:
    return f"{name.replace('_weight', '').replace('_', ' ')} {value:g}"


def member_labels(options: dict[str, Any]) -> list[str]:
    """One label per sweep member ("style 0.0001 seed 2"), in the batch's order; [] for a single
    run."""
    names, grid = sweep_grid(make_options(**options))
    return [" ".join(_label(n, v) for n, v in zip(names, row)) for row in grid] if names else []


def planned_iterations(options: dict[str, Any], shape: tuple[int, ...]) -> int:
    """Iterations the run will take in all: with coarse-to-fine ``scales``, those of every stage
    (scales at or above the content's size are skipped, as in ``stylize``)."""
    o = make_options(**options)
    if not o.scales:
        return o.iterations
    from jaxnst.pipeline.multiscale import stages

    return int(sum(n for _, n in stages(o, max(shape[:2]))))


def error_message(e: BaseException, size: list[int]) -> str:
    """One line for a failed job."""
    text = " ".join(str(e).split())
    if "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or isinstance(e, MemoryError):
        return f"out of memory at {size[0]}x{size[1]} px; try a smaller size or fewer sweep values"
    if isinstance(e, ValueError):
        return text[:300]
    return f"{type(e).__name__}: {text[:300]}"


class Previews:
    """The ``stylize`` callback of a job: after every compiled chunk it writes the current image
    (every member's, for a sweep) as ``preview_NNN.jpg``, publishes a ``progress`` event, and
    returns True (stop) once the job's stop flag is set.

    ``x`` counts iterations across coarse-to-fine stages (``stylize`` restarts its step count at
    each stage; a new stage shows as a new image size or a smaller step)."""

    def __init__(self, store: Store, job: Job) -> None:
        self.store, self.job = store, job
        self.x, self.count = 0, 0
        self._last, self._offset = 0, 0
        self._shape: tuple[int, ...] | None = None
        self._t0 = time.perf_counter()
        self._luma = job.options.get("preserve_color") == "luminance"
        self._content = job.content

    def __call__(self, step: int, loss: float, image: Any) -> bool:
        im = np.asarray(image, np.float32)
        if self._shape is not None and (im.shape != self._shape or step <= self._last):
            self._offset += self._last
        self._shape, self._last = im.shape, step
        self.x = self._offset + int(step)
        if self._luma and self._content is not None and im.shape[-3:] == self._content.shape:
            from jaxnst.loss import (
                color,  # the transfer ran on luma; show it with the content's chroma
            )

            im = np.asarray(color.combine_luma_chroma(im, self._content))
        for i, a in enumerate(im if im.ndim == 4 else im[None]):
            self.store.save_image(self.job.id, f"preview_{i:03d}.jpg", np.clip(a, 0.0, 1.0))
        self.count += 1
        record = self.job.record
        record.update(step=self.x, loss=_finite(loss))
        self.store.write_record(record)
        self.job.feed.publish(
            "progress",
            {
                "step": self.x,
                "iterations": record["iterations"],
                "loss": _finite(loss),
                "elapsed": round(time.perf_counter() - self._t0, 3),
                "preview": self.count,
                "width": int(im.shape[-2]),
                "height": int(im.shape[-3]),
            },
        )
        return self.job.stop.is_set()


def _history(h: dict[str, np.ndarray], i: int | None) -> dict[str, list]:
    return {
        k: [_finite(x) for x in (v if k == "step" or i is None else v[i])] for k, v in h.items()
    }


def write(
    store: Store, job: Job, result: Result, wall: float, digest: str, status: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the result image(s), the contact sheet of a sweep, the thumbnail and ``report.json``
    (each atomically). Returns (files: names for the page, final losses)."""
    import jax

    o = result.options
    h, w = np.shape(result.image)[-3:-1]
    report: dict[str, Any] = {
        "id": job.id,
        "status": status,
        **{k: v for k, v in job.record["inputs"].items()},
        "image_size": [int(w), int(h)],
        "wall_seconds": wall,
        "compile_seconds": result.compile_seconds,
        "run_seconds": result.run_seconds,
        "device": result.device,
        "backend": jax.default_backend(),
        "devices": result.devices,
        "weights_sha256": digest,
        "options": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(o).items()
        }
        if o is not None
        else {},
    }
    final: dict[str, Any]
    if result.sweep is None:
        store.save_image(job.id, "result.png", result.image)
        final = {k: _finite(v[-1]) for k, v in result.history.items() if k != "step"}
        report |= {
            "iterations": int(result.iterations),
            "evaluations": int(result.evaluations),
            "final_loss": final,
            "diverged_at": result.diverged_at,
            "seconds_per_evaluation": result.run_seconds / max(int(result.evaluations), 1),
            "history": _history(result.history, None),
        }
        files: dict[str, Any] = {"image": "result.png", "members": []}
        store.save_thumb(job.id, result.image)
    else:
        members, names = _write_members(store, job, result)
        tiles = [job.content, job.style, *result.image]
        captions = ["content", "style"] + [
            f"{m['label']}\nstyle {m['final_loss']['style'] or 0:.3g}" for m in members
        ]
        sheet = image_io.contact_sheet(tiles, captions)
        store.save_image(job.id, "sheet.png", sheet)
        n = len(members)  # the thumbnail: the members alone, unlabelled, in a near-square grid
        store.save_thumb(
            job.id,
            image_io.contact_sheet(
                list(result.image),
                [""] * n,
                columns=math.ceil(math.sqrt(n)),
                tile=160,
                label_height=0,
            ),
        )
        report |= {"members": members, "batch_evaluations": result.batch_evaluations}
        files = {"image": "sheet.png", "members": names}
        final = {"members": [m["final_loss"] for m in members]}
    store.write_json(job.id, "report.json", report)
    files["report"] = "report.json"
    return files, final


def _write_members(
    store: Store, job: Job, result: Result
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each sweep member's image, and its record for the report."""
    labels = job.record["members"]
    members: list[dict[str, Any]] = []
    names: list[str] = []
    diverged = list(result.diverged_at) if isinstance(result.diverged_at, list) else []
    for i in range(result.image.shape[0]):
        name = f"result_{i:03d}.png"
        store.save_image(job.id, name, result.image[i])
        names.append(name)
        members.append(
            {
                "image": name,
                "label": labels[i],
                **{k: float(v[i]) for k, v in (result.sweep or {}).items()},
                "iterations": int(np.asarray(result.iterations)[i]),
                "evaluations": int(np.asarray(result.evaluations)[i]),
                "final_loss": {
                    k: _finite(v[i, -1]) for k, v in result.history.items() if k != "step"
                },
                "diverged_at": diverged[i],
                "history": _history(result.history, i),
            }
        )
    return members, names
