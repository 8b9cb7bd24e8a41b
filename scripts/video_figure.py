#!/usr/bin/env python
"""The README's video figure: a synthetic clip made from the bundled images (a swirl-textured disc
moving over a panning photo of Chelsea, true motion known), stylized per frame (independently)
and with jaxnst's video modes, side by side as a GIF and a PNG strip, with the warping error E
against the true motion and the mean style loss of each.

    python scripts/video_figure.py [--size 128] [--frames 8] [--iterations 60] [--out docs]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from jaxnst import image_io
from jaxnst.model import weights
from jaxnst.video import io as vio
from jaxnst.video import synthetic
from jaxnst.video.api import stylize_video


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--out", default="docs")
    a = ap.parse_args()
    out = Path(a.out)
    variables, _ = weights.load_variables()
    h, w = a.size * 3 // 4, a.size
    clip = synthetic.moving_object(
        a.frames, (h, w), speed=(0.5, 2.0 * a.size / 64), pan_speed=(0.0, a.size / 64)
    )
    style = synthetic.sample_image("swirls.png", a.size)
    states = []
    multi = stylize_video(
        clip.frames,
        style,
        variables=variables,
        iterations=a.iterations,
        passes=a.passes,
        pass_iterations=a.iterations // 2,
        on_state=states.append,
    )
    seq = stylize_video(clip.frames, style, variables=variables, iterations=a.iterations)
    runs = {"per-frame": states[0].frames, "sequential": seq.frames, "multi-pass": multi.frames}
    styles = {
        "per-frame": states[0].losses["style"],
        "sequential": seq.losses["style"],
        "multi-pass": multi.losses["style"],
    }
    report = {
        k: {"E": synthetic.warping_error(v, clip), "style_loss": float(np.mean(styles[k]))}
        for k, v in runs.items()
    }
    for k in report:
        report[k]["E_ratio"] = report[k]["E"] / report["per-frame"]["E"]
        report[k]["style_ratio"] = report[k]["style_loss"] / report["per-frame"]["style_loss"]
    report["clip"] = {
        "frames": a.frames,
        "size": [w, h],
        "iterations": a.iterations,
        "passes": a.passes,
        "pass_iterations": a.iterations // 2,
    }
    print(json.dumps(report, indent=2))
    names = ["content", *runs]
    movies = [clip.frames, *runs.values()]
    labels = [n + (f"  E={report[n]['E']:.3f}" if n in report else "") for n in names]
    tiles = [
        image_io.contact_sheet(
            [m[t] for m in movies], labels, columns=len(movies), tile=a.size, label_height=18
        ).astype(np.float32)
        / 255.0
        for t in range(a.frames)
    ]
    vio.write(out / "video_compare.gif", tiles, fps=6)
    strip = np.concatenate(tiles[: min(4, a.frames)], axis=0)
    image_io.save(out / "video_compare.png", strip)
    (out / "video_compare.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
