#!/usr/bin/env python
"""SHA-256 digests of what jaxnst computes, to show that a refactoring changed no behaviour.

Ten API configurations (issue 10's: plain, Adam with EMA, a 2x2 sweep, several contents with a
style blend, luminance transfer, histogram colour with the Wasserstein style loss and average
pooling, masks, coarse-to-fine scales, texture synthesis, content reconstruction), each on the
bundled pair at 64 px with the real weights, digest of the images and loss histories; then the
CLI on the bundled pair at 128 px, 50 L-BFGS iterations: digest of the PNG's pixels.

    python scripts/behaviour_digests.py [--json OUT.json]

Run it before and after a change, on the same machine: the digests must be equal. ``precision``
"auto" is float32 here (JAXNST_CPU_BF16=0): on a CPU with bf16 units its per-layer plans are timed
and cached, and a re-timed plan would change the digests without any change to the code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["JAXNST_CPU_BF16"] = "0"  # before jaxnst reads it (see above); the CLI inherits it

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import jaxnst  # noqa: E402
from jaxnst.cli.command import DEMO_CONTENT, DEMO_STYLE  # noqa: E402

SAMPLES = Path(jaxnst.__file__).parent / "samples"
SIZE = 64
ITERATIONS = 8


def _load(name: str, size: int = SIZE) -> np.ndarray:
    im = Image.open(SAMPLES / name).convert("RGB")
    s = size / max(im.size)
    im = im.resize((max(16, round(im.width * s)), max(16, round(im.height * s))), Image.LANCZOS)
    return np.asarray(im, np.float32) / 255.0


def _digest(result) -> str:
    h = hashlib.sha256()
    for a in (result.image, result.losses):
        h.update(np.ascontiguousarray(np.asarray(a, np.float32)).tobytes())
    return h.hexdigest()


def configurations(c: np.ndarray, s: np.ndarray) -> dict:
    """name -> a function running one configuration (shared: ITERATIONS steps, chunk 4)."""
    kw = dict(iterations=ITERATIONS, chunk=4)
    half = np.zeros(c.shape[:2], np.float32)
    half[:, : c.shape[1] // 2] = 1.0
    masks = [half, 1.0 - half]
    return {
        "plain": lambda: jaxnst.stylize(c, s, **kw),
        "adam_ema": lambda: jaxnst.stylize(c, s, optimizer="adam", ema_decay=0.9, **kw),
        "sweep_2x2": lambda: jaxnst.stylize(
            c, s, style_weight=(1e-4, 1e-3), tv_weight=(0.0, 1e4), **kw
        ),
        "contents_blend": lambda: jaxnst.stylize(
            [c, c[::-1]], [s, s[:, ::-1]], style_blend_weights=(0.7, 0.3), **kw
        ),
        "luminance": lambda: jaxnst.stylize(c, s, preserve_color="luminance", **kw),
        "histogram_wasserstein_avg": lambda: jaxnst.stylize(
            c, s, preserve_color="histogram", style_loss="wasserstein", pooling="avg", **kw
        ),
        "masks": lambda: jaxnst.stylize(c, [s, s[:, ::-1]], content_masks=masks, **kw),
        "scales": lambda: jaxnst.stylize(c, s, scales=(32, SIZE), **kw),
        "texture": lambda: jaxnst.synthesize_texture(s, (48, 48), **kw),
        "reconstruct": lambda: jaxnst.reconstruct_content(c, **kw),
    }


def cli_digest() -> str:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out.png"
        cmd = [sys.executable, "-m", "jaxnst.cli", str(SAMPLES / DEMO_CONTENT)]
        cmd += [str(SAMPLES / DEMO_STYLE), "-o", str(out), "--size", "128", "--iterations", "50"]
        subprocess.run(cmd + ["--quiet", "--no-compile-cache"], check=True)
        return hashlib.sha256(np.asarray(Image.open(out)).tobytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    c, s = _load(DEMO_CONTENT), _load(DEMO_STYLE)
    out = {name: _digest(run()) for name, run in configurations(c, s).items()}
    out["cli_128px_50it_pixels"] = cli_digest()
    for k, v in out.items():
        print(f"{v}  {k}", flush=True)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
