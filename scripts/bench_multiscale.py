#!/usr/bin/env python
"""Coarse-to-fine against single-scale at the same compute, judged at full resolution.

Compute is counted in full-resolution evaluation equivalents (an evaluation at half the side
costs a quarter). Single-scale spends E evaluations at --size; coarse-to-fine spends E/4 of them
at size/4 (16x as many iterations), E/4 at size/2 (4x as many) and E/2 at --size. Both start from
the content image with the default weights; the report gives each result's style and content
loss evaluated at full resolution, wall seconds, and writes both images side by side.

    python scripts/bench_multiscale.py --size 1024 --budget 40 [--content C --style S] [--out DIR]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from jaxnst import image_io
from jaxnst.cli.command import sample_path
from jaxnst.loss import losses
from jaxnst.stylize import Options, features, stylize


def full_res_losses(image, content, style, o: Options) -> dict:
    f = features(image, o.style_layers + o.content_layers)
    cf = features(content, o.content_layers)
    sf = features(style, o.style_layers)
    ls = losses.style_loss(f, {n: losses.gram(sf[n]) for n in o.style_layers})
    lc = np.mean([float(losses.content_loss(f[n], cf[n])) for n in o.content_layers])
    return {"style": float(ls), "content": float(lc)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--budget", type=int, default=40, help="full-resolution evaluations")
    ap.add_argument("--content", default=str(sample_path("chelsea.jpg")))
    ap.add_argument("--style", default=str(sample_path("swirls.png")))
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    content = image_io.resize(image_io.load(a.content), a.size)
    style = image_io.resize(image_io.load(a.style), a.size)
    o = Options()
    e = a.budget
    t = time.perf_counter()
    single = stylize(content, style, iterations=e)
    t_single = time.perf_counter() - t
    t = time.perf_counter()
    multi = stylize(
        content, style, scales=(a.size // 4, a.size // 2), scale_iterations=(4 * e, e, e // 2)
    )
    t_multi = time.perf_counter() - t
    rep = {
        "size": list(content.shape[:2]),
        "budget_full_res_evaluations": e,
        "single": {
            "seconds": t_single,
            "evaluations": single.evaluations,
            **full_res_losses(single.image, content, style, o),
        },
        "coarse_to_fine": {
            "seconds": t_multi,
            "evaluations": multi.evaluations,
            "scales": [a.size // 4, a.size // 2, a.size],
            "iterations": [4 * e, e, e // 2],
            **full_res_losses(multi.image, content, style, o),
        },
    }
    out = Path(a.out)
    image_io.save(
        out / "multiscale_compare.jpg",
        np.concatenate([single.image, np.ones((content.shape[0], 8, 3)), multi.image], 1),
    )
    print(json.dumps(rep, indent=2))
    with open(out / "multiscale.json", "w") as f:
        json.dump(rep, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
