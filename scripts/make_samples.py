#!/usr/bin/env python
"""Generate the bundled style sample ``jaxnst/samples/swirls.png`` with our own code.

Brush-stroke-like swirls: white noise smeared along the streamlines of a few random vortices (line
integral convolution), coloured with a night-sky palette. Deterministic for a given --seed.
    python scripts/make_samples.py [--size 384] [--seed 7] [--out jaxnst/samples/swirls.png]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

PALETTE = (
    np.array(
        [
            [16, 28, 72],
            [28, 64, 140],
            [46, 110, 170],
            [90, 160, 180],
            [220, 200, 110],
            [245, 225, 160],
        ],
        np.float64,
    )
    / 255.0
)


def swirls(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    vx = np.zeros_like(x) + 0.3
    vy = np.zeros_like(y) + 0.1
    for _ in range(9):
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(0.08, 0.25) * size
        s = rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.4)
        dx, dy = x - cx, y - cy
        fall = np.exp(-(dx**2 + dy**2) / (2 * r * r))
        vx += -s * dy / r * fall
        vy += s * dx / r * fall
    norm = np.hypot(vx, vy) + 1e-9
    vx, vy = vx / norm, vy / norm
    # Coarse noise gives strokes a few pixels wide instead of single-pixel hairs.
    coarse = rng.uniform(size=(size // 3 + 1, size // 3 + 1))
    noise = np.kron(coarse, np.ones((3, 3)))[:size, :size]
    acc = np.zeros_like(noise)
    for sign in (1.0, -1.0):
        px, py = x.copy(), y.copy()
        for _ in range(14):
            ix = np.clip(px.round().astype(int), 0, size - 1)
            iy = np.clip(py.round().astype(int), 0, size - 1)
            acc += noise[iy, ix]
            px += sign * vx[iy, ix] * 1.5
            py += sign * vy[iy, ix] * 1.5
    lic = (acc - acc.mean()) / (acc.std() + 1e-9)
    tone = 0.5 + 0.35 * np.sin(x / size * 5 + 2 * np.cos(y / size * 4)) + 0.18 * lic
    moons = np.zeros_like(x)
    for _ in range(4):
        cx, cy = rng.uniform(0, size, 2)
        moons = np.maximum(moons, np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (size / 22) ** 2)))
    tone = np.clip(tone + 0.6 * moons, 0, 1) * (len(PALETTE) - 1)
    lo = np.floor(tone).astype(int).clip(0, len(PALETTE) - 2)
    t = (tone - lo)[..., None]
    return PALETTE[lo] * (1 - t) + PALETTE[lo + 1] * t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parent.parent / "jaxnst" / "samples" / "swirls.png"),
    )
    a = ap.parse_args()
    img = (swirls(a.size, a.seed) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(img).save(a.out, optimize=True)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
