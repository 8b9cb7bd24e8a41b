"""The results folder: one sub-folder per job, named by an opaque random id.

Each job folder holds ``job.json`` (its record: status, options, inputs, progress, final losses),
the working-size inputs (``content.jpg``, ``style.jpg``), previews of the current iterate
(``preview_000.jpg``, one per sweep member), and when done ``result.png`` (or ``result_000.png``...
and ``sheet.png`` for a sweep), ``report.json`` and ``thumb.jpg``. Every file is written atomically
(temporary file, then rename), so a restart finds only whole files. Clients address files by a job
id and a name from :data:`FILE_NAMES`; nothing a client sends is joined to a path unchecked.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxnst import image_io
from jaxnst._atomic import atomic_path

ID = re.compile(r"[0-9a-f]{16}\Z")
# Names a client may ask for inside a job folder.
FILE_NAMES = re.compile(
    r"(?:(?:result|preview)_\d{3}\.(?:png|jpg)|result\.png|sheet\.png|"
    r"report\.json|thumb\.jpg|content\.jpg|style\.jpg)\Z"
)
ACTIVE = ("queued", "running")
TERMINAL = ("finished", "stopped", "failed", "cancelled", "interrupted")
THUMB_SIDE = 240


def new_id() -> str:
    """An opaque job id: 16 hex digits from the OS's random source."""
    return secrets.token_hex(8)


class Store:
    """Job records and files under ``root`` (created if missing)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, job_id: str) -> Path:
        """The folder of a job id; ValueError for anything but an id."""
        if not isinstance(job_id, str) or not ID.match(job_id):
            raise ValueError("not a job id")
        return self.root / job_id

    def file(self, job_id: str, name: str) -> Path | None:
        """The path of an existing file ``name`` of a job, or None (also for a name not in
        :data:`FILE_NAMES`, which is how a traversal attempt ends)."""
        if not FILE_NAMES.match(name):
            return None
        try:
            p = self.folder(job_id) / name
        except ValueError:
            return None
        return p if p.is_file() else None

    def write_record(self, record: dict[str, Any]) -> None:
        """Write ``job.json`` of ``record["id"]`` atomically (creating the folder)."""
        d = self.folder(record["id"])
        d.mkdir(exist_ok=True)
        with atomic_path(d / "job.json") as tmp, open(tmp, "w") as f:
            json.dump(record, f, indent=1)

    def write_json(self, job_id: str, name: str, data: Any) -> None:
        with atomic_path(self.folder(job_id) / name) as tmp, open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")

    def save_image(self, job_id: str, name: str, image: np.ndarray) -> None:
        """Save float RGB (H, W, 3) in [0, 1] (or uint8) as ``name`` (.png or .jpg), atomically."""
        image_io.save(self.folder(job_id) / name, image, quality=90)

    def save_thumb(self, job_id: str, image: np.ndarray) -> None:
        if image.dtype == np.uint8:
            image = image.astype(np.float32) / 255.0
        self.save_image(job_id, "thumb.jpg", image_io.resize(image, THUMB_SIDE))

    def load_all(self) -> list[dict[str, Any]]:
        """Every readable job record, oldest first. Jobs that were queued or running when the
        server stopped are marked ``interrupted`` (and rewritten)."""
        records = []
        for d in self.root.iterdir():
            if not ID.match(d.name) or not (d / "job.json").is_file():
                continue
            try:
                r = json.loads((d / "job.json").read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(r, dict) or r.get("id") != d.name:
                continue
            if r.get("status") in ACTIVE:
                r["status"] = "interrupted"
                r["message"] = "the server stopped before this job finished"
                r["finished"] = r.get("finished") or time.time()
                self.write_record(r)
            records.append(r)
        records.sort(key=lambda r: r.get("created", 0))
        return records
