#!/usr/bin/env python
"""Reproduce Gatys et al. (2016) Figures 1 and 3 with our code, on the bundled sample images.

Figure 1: content reconstructions from white noise using conv1_2, conv2_2, conv3_2, conv4_2 and
conv5_2 alone (top row), and style reconstructions from the growing layer subsets conv1_1,
conv1_1+conv2_1, ... up to conv5_1 (bottom row).
Figure 3: stylizations for the same growing style-layer subsets (rows) and four content/style
weight ratios spanning three decades (columns), each row one batched sweep over the style weight.

    python scripts/figures.py [--size 128] [--iterations 200] [--out docs]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from jaxnst import image_io
from jaxnst.cli.command import sample_path
from jaxnst.stylize import STYLE_LAYERS, Options, reconstruct_content, stylize, synthesize_texture

SUBSETS = [STYLE_LAYERS[: i + 1] for i in range(len(STYLE_LAYERS))]
CONTENT_RECON = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--out", default="docs")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    content = image_io.resize(image_io.load(sample_path("chelsea.jpg")), a.size)
    style = image_io.resize(image_io.load(sample_path("swirls.png")), a.size)

    tiles, labels = [], []
    for layer in CONTENT_RECON:
        r = reconstruct_content(content, layer, iterations=a.iterations, tv_weight=0.0)
        tiles.append(r.image)
        labels.append(f"content from {layer}")
        print(
            f"content {layer}: loss {r.history['content'][0]:.3g} -> {r.history['content'][-1]:.3g}"
        )
    for subset in SUBSETS:
        r = synthesize_texture(style, style.shape[:2], style_layers=subset, iterations=a.iterations)
        tiles.append(r.image)
        labels.append(f"texture {subset[0]}..{subset[-1]}")
        print(
            f"style {subset[-1]}: loss {r.history['style'][0]:.3g} -> {r.history['style'][-1]:.3g}"
        )
    image_io.save(out / "figure1.jpg", image_io.contact_sheet(tiles, labels, columns=5, tile=160))

    base = Options().style_weight
    weights = [base * f for f in (0.01, 0.1, 1.0, 10.0)]  # content/style ratio over 3 decades
    tiles, labels = [], []
    for subset in SUBSETS:
        r = stylize(
            content, style, style_layers=subset, style_weight=weights, iterations=a.iterations
        )
        for i, w in enumerate(weights):
            tiles.append(r.image[i])
            labels.append(f"style {subset[0]}..{subset[-1]}\ncontent/style weight {1 / w:.0e}")
        print(
            f"figure 3 row {subset[-1]}: final style losses "
            f"{np.round(r.history['style'][:, -1], 1)}"
        )
    image_io.save(out / "figure3.jpg", image_io.contact_sheet(tiles, labels, columns=4, tile=160))
    print(f"wrote {out / 'figure1.jpg'} and {out / 'figure3.jpg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
