#!/usr/bin/env python
"""Pixel-scale speckle: param="pixels" against param="laplacian" at equal iterations (issue 21).

For each pair and mode it runs both parametrisations with the same options and reports the result's
high-frequency energy (mean |x - gaussian_blur(x, sigma=1 px)| per channel, over pixels and
channels), the final unweighted style and content losses (the run's own history: both runs share
the objective), wall seconds, and the ratios laplacian / pixels. The aim in issue 21: at least 30 %
less HF energy at a style loss no worse than 1.2x.

    texture        from noise, only the style's Grams (jaxnst.synthesize_texture)
    stylize        content + style, from the content
    stylize-noise  content + style, from noise

Pairs: the bundled sample pair (chelsea.jpg x swirls.png, as ``jaxnst --demo``), and with
``--images DIR`` also tubingen.jpg x starry_night.jpg from DIR. Each result is saved as PNG under
--out, with a side-by-side <pair>_<mode>_<optimizer>.png (pixels left, laplacian right).

    python scripts/bench_speckle.py --images DIR --json speckle.json  # DIR: tubingen, starry_night
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from jaxnst import image_io
from jaxnst.cli.inputs import DEMO_CONTENT, DEMO_STYLE, sample_path
from jaxnst.optim import param as pyramid
from jaxnst.stylize import stylize, synthesize_texture

MODES = ("texture", "stylize", "stylize-noise")
NOISE_HELP = "runs from noise: white (init=noise) or coarse (see coarse_noise; both params)"
SHARED_PAIR = ("tubingen", "tubingen.jpg", "starry_night.jpg")


def blur(x: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian blur of (H, W, C), per channel; scipy if installed, else OpenCV."""
    try:
        from scipy.ndimage import gaussian_filter

        return gaussian_filter(x, sigma=(sigma, sigma, 0), mode="reflect")
    except ImportError:
        import cv2

        return cv2.GaussianBlur(x, (0, 0), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def hf_energy(image: np.ndarray) -> float:
    """Mean absolute difference between the image and its sigma = 1 px Gaussian blur."""
    x = np.asarray(image, np.float32)
    return float(np.mean(np.abs(x - blur(x))))


def pairs(images: str | None) -> list[tuple[str, Path, Path]]:
    out = [("bundled", sample_path(DEMO_CONTENT), sample_path(DEMO_STYLE))]
    if images:
        name, c, s = SHARED_PAIR
        out.append((name, Path(images) / c, Path(images) / s))
    return out


def coarse_noise(shape: tuple[int, int], levels: int, seed: int) -> np.ndarray:
    """Uniform noise on the pyramid's coarsest grid, upsampled to ``shape``: noise without the
    pixel-scale part that white noise puts into the finest level (and no Gram loss removes)."""
    h, w = shape
    small = pyramid.level_shapes(h, w, pyramid.levels_for(h, w, levels))[-1]
    noise = np.random.default_rng(seed).random((*small, 3), np.float32)
    return np.asarray(pyramid.upsample(noise, (h, w)))


def run_one(mode: str, content: np.ndarray, style: np.ndarray, options: dict, a) -> tuple:
    t = time.perf_counter()
    shape = style.shape[:2] if mode == "texture" else content.shape[:2]
    if mode != "stylize" and a.noise == "coarse":
        options = {**options, "init": coarse_noise(shape, a.levels, a.seed)}
    if mode == "texture":
        r = synthesize_texture(style, shape, **options)
    else:
        r = stylize(
            content, style, **{"init": "noise" if mode != "stylize" else "content", **options}
        )
    return r, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", help="folder with tubingen.jpg and starry_night.jpg (optional)")
    ap.add_argument("--modes", default="texture,stylize", help=f"comma list of {', '.join(MODES)}")
    ap.add_argument("--optimizers", default="lbfgs", help="comma list of lbfgs, adam")
    ap.add_argument("--texture-size", type=int, default=128)
    ap.add_argument("--texture-iterations", type=int, default=150)
    ap.add_argument("--stylize-size", type=int, default=256)
    ap.add_argument("--stylize-iterations", type=int, default=100)
    ap.add_argument("--levels", type=int, default=5, help="pyramid_levels of the laplacian runs")
    ap.add_argument("--lr", type=float, default=0.02, help="Adam learning rate, pixels runs")
    ap.add_argument("--lr-laplacian", type=float, help="Adam learning rate, laplacian (def. --lr)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", choices=("white", "coarse"), default="white", help=NOISE_HELP)
    ap.add_argument("--out", default="/tmp/speckle", help="folder for the result PNGs")
    ap.add_argument("--json", help="write the runs and ratios to this file")
    a = ap.parse_args()
    modes = [m for m in a.modes.split(",") if m]
    optimizers = [o for o in a.optimizers.split(",") if o]
    if bad := [m for m in modes if m not in MODES]:
        ap.error(f"unknown mode(s) {bad}; expected {MODES}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    for pair, cpath, spath in pairs(a.images):
        for mode in modes:
            size = a.texture_size if mode == "texture" else a.stylize_size
            iters = a.texture_iterations if mode == "texture" else a.stylize_iterations
            tag = "_coarse" if a.noise == "coarse" and mode != "stylize" else ""
            content = image_io.resize(image_io.load(cpath), size)
            # As the CLI (--style-scale 1): the style's longer side is the output's.
            style = image_io.resize(image_io.load(spath), size)
            for opt in optimizers:
                results = {}
                for param in ("pixels", "laplacian"):
                    options = {"iterations": iters, "optimizer": opt, "seed": a.seed}
                    options["param"] = param
                    if param == "laplacian":
                        options["pyramid_levels"] = a.levels
                    lr = a.lr_laplacian if param == "laplacian" and a.lr_laplacian else a.lr
                    if opt == "adam":
                        options["learning_rate"] = lr
                    r, secs = run_one(mode, content, style, options, a)
                    name = f"{pair}_{mode}_{opt}_{param}{tag}"
                    image_io.save(out / f"{name}.png", r.image)
                    results[param] = r.image
                    row = dict(pair=pair, mode=mode, optimizer=opt, param=param, name=name)
                    row.update(size=list(r.image.shape[:2]), iterations=int(r.iterations))
                    row.update(evaluations=int(r.evaluations), levels=options.get("pyramid_levels"))
                    row.update(learning_rate=options.get("learning_rate"), hf=hf_energy(r.image))
                    row.update({k: float(r.history[k][-1]) for k in ("style", "content")})
                    row.update(seconds=secs, compile_seconds=float(r.compile_seconds))
                    row.update(hf_style_image=hf_energy(style))
                    rows.append(row)
                    print(f"  {name}: hf {row['hf']:.4f} style {row['style']:.4g}", flush=True)
                gap = np.ones_like(results["pixels"][:, :4])
                side = np.concatenate([results["pixels"], gap, results["laplacian"]], axis=1)
                image_io.save(out / f"{pair}_{mode}_{opt}{tag}.png", side)

    comparisons = []
    for p, q in zip(rows[::2], rows[1::2]):
        hf_ratio, style_ratio = q["hf"] / p["hf"], q["style"] / p["style"]
        comparisons.append(
            {
                **{k: p[k] for k in ("pair", "mode", "optimizer")},
                "hf_ratio": hf_ratio,
                "style_ratio": style_ratio,
                "content_ratio": q["content"] / p["content"] if p["content"] else None,
                "seconds_ratio": q["seconds"] / p["seconds"],
                "aim_met": hf_ratio <= 0.7 and style_ratio <= 1.2,
            }
        )
    head = (
        f"{'pair':9} {'mode':13} {'opt':5} {'param':9} {'hf':>7} {'style':>10} "
        f"{'content':>10} {'s':>6} | {'hf L/P':>6} {'style L/P':>9} {'cont L/P':>8} aim"
    )
    print(head)
    print("-" * len(head))
    for p, q, c in zip(rows[::2], rows[1::2], comparisons):
        for r in (p, q):
            line = (
                f"{r['pair']:9} {r['mode']:13} {r['optimizer']:5} {r['param']:9} "
                f"{r['hf']:7.4f} {r['style']:10.4g} {r['content']:10.4g} {r['seconds']:6.1f}"
            )
            if r is q:
                cr = "-" if c["content_ratio"] is None else f"{c['content_ratio']:.2f}"
                line += (
                    f" | {c['hf_ratio']:6.2f} {c['style_ratio']:9.2f} {cr:>8} "
                    f"{'yes' if c['aim_met'] else 'no'}"
                )
            print(line)
    refs = sorted({f"{r['pair']} {r['size'][1]} px {r['hf_style_image']:.4f}" for r in rows})
    print("(HF energy of the style image itself: " + ", ".join(refs) + ")")
    if a.json:
        Path(a.json).write_text(
            json.dumps({"args": vars(a), "runs": rows, "comparisons": comparisons}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
