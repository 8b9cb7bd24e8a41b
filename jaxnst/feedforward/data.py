"""Training photos: a folder of images in, batches of random crops out, prepared on a background
thread so the compiled step does not wait for them.

Each sample is a photo scaled so its shorter side is ``size`` times a random factor in
[1, :data:`MAX_ZOOM`], then a random ``size`` x ``size`` crop, flipped left-right half of the time.
Everything random comes from NumPy generators seeded by ``(seed, step)``: batch ``t`` is the same
whatever came before, so a resumed run sees exactly the batches an uninterrupted one would.
Photos are taken in a fresh permutation each epoch. A file that cannot be read, or whose shorter
side is below ``size / 2`` (it would be blown up more than 2x), is skipped: it is replaced by
another photo drawn from the same seeded generator, and counted.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jaxnst import image_io

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MAX_ZOOM = 1.5  # a photo's shorter side is 1-1.5x the crop: varied scale, strokes kept in size


class DataError(ValueError):
    """The training images cannot be used (one line, naming the folder)."""


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files in ``folder`` and its subfolders (by extension), sorted; DataError for a
    missing or empty folder."""
    d = Path(folder)
    if not d.exists():
        raise DataError(f"{d}: no such folder (--images: a folder of training photos)")
    if not d.is_dir():
        raise DataError(f"{d}: not a folder (--images: a folder of training photos)")
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise DataError(
            f"{d}: no image files ({', '.join(sorted(EXTENSIONS))}) in it or its subfolders"
        )
    return files


class Photos:
    """Deterministic batches of crops from ``files``: :meth:`batch` ``(step)`` -> (B, size, size,
    3) float32 in [0, 1]. Thread-safe for one producer."""

    def __init__(self, files: list[Path], size: int, batch: int, seed: int = 0):
        self.files, self.size, self.batch, self.seed = list(files), int(size), int(batch), seed
        self.bad: dict[Path, str] = {}  # file -> why it was skipped
        self._perm: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm:
            self._perm = {
                epoch: np.random.default_rng([self.seed, 1, epoch]).permutation(len(self.files))
            }
        return self._perm[epoch]

    def _crop(self, path: Path, rng: np.random.Generator) -> np.ndarray | None:
        zoom = rng.uniform(1.0, MAX_ZOOM)  # drawn before the skip test: the same draws whether
        flip = rng.random() < 0.5  # or not this process has met the bad file before (resume)
        u, v = rng.random(2)
        if path in self.bad:
            return None
        try:
            im = image_io.load_short_side(
                path, max(self.size, round(self.size * zoom)), min_short=max(1, self.size // 2)
            )
        except image_io.ImageError as e:
            self.bad[path] = str(e)
            return None
        h, w = im.shape[:2]
        y, x = int(u * (h - self.size + 1)), int(v * (w - self.size + 1))
        crop = im[y : y + self.size, x : x + self.size]
        return crop[:, ::-1] if flip else crop

    def sample(self, index: int) -> np.ndarray:
        """The ``index``-th sample of the run (step t's j-th is t * batch + j)."""
        n = len(self.files)
        rng = np.random.default_rng([self.seed, 2, index])
        path = self.files[self._order(index // n)[index % n]]
        for _ in range(64 + 4 * n):  # a bad file: another, drawn from this sample's generator
            crop = self._crop(path, rng)
            if crop is not None:
                return crop
            if len(self.bad) == n:
                break
            path = self.files[int(rng.integers(n))]
        raise DataError(
            f"none of the {n} images could be used (e.g. {next(iter(self.bad.values()))})"
        )

    def batch_at(self, step: int) -> np.ndarray:
        return np.stack([self.sample(step * self.batch + j) for j in range(self.batch)])

    def skipped_line(self) -> str | None:
        """One line about the files skipped so far, or None."""
        if not self.bad:
            return None
        first = next(iter(self.bad.values()))
        return f"skipped {len(self.bad)} images so far (unreadable or too small; {first})"


def validation_split(files: list[Path], count: int) -> tuple[list[Path], list[Path]]:
    """(training, held-out): every k-th file held out, ``count`` in all (none of them trained on);
    with fewer than 2 files, nothing is held out."""
    if count <= 0 or len(files) < 2:
        return files, []
    count = min(count, len(files) // 2)
    k = len(files) // count
    held = set(range(0, k * count, k))
    return [f for i, f in enumerate(files) if i not in held], [files[i] for i in sorted(held)]


class Prefetcher:
    """A background thread that prepares chunks of batches ahead: :meth:`get` returns (chunk,
    B, size, size, 3) float32 for steps ``start .. start + chunk - 1`` in order, and the seconds the
    caller waited for it is summed in ``waited`` (0 when the thread keeps the step fed)."""

    def __init__(self, photos: Photos, start: int, chunk: int, depth: int = 2):
        self.photos, self.chunk, self.waited = photos, chunk, 0.0
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._work, args=(start,), daemon=True, name="jaxnst-data"
        )
        self._thread.start()

    def _work(self, step: int) -> None:
        while not self._stop.is_set():
            try:
                item: object = np.stack(
                    [self.photos.batch_at(t) for t in range(step, step + self.chunk)]
                )
            except Exception as e:  # noqa: BLE001 (handed to the consumer, raised there)
                item = e
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, Exception):
                return
            step += self.chunk

    def get(self) -> np.ndarray:
        t = time.perf_counter()
        item = self._q.get()
        self.waited += time.perf_counter() - t
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            yield self.get()
