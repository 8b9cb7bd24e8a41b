#!/usr/bin/env python
"""Render a small gallery of jaxnst's quality controls from the bundled sample images.

python scripts/gallery.py [--size 128] [--iterations 200] [--out docs/gallery.jpg]
"""

import argparse
import sys

from jaxnst import image_io
from jaxnst.cli.command import sample_path
from jaxnst.stylize import stylize, synthesize_texture

# Each entry: label, options. The Wasserstein loss has another scale than the Gram loss: at the
# content image its value is ~1.6e5 times smaller here, hence its larger style weight.
CONTROLS = [
    ("defaults", {}),
    ("--preserve-color luminance", {"preserve_color": "luminance"}),
    ("--preserve-color histogram", {"preserve_color": "histogram"}),
    ("--pooling avg (rescaled)", {"pooling": "avg"}),
    ("--style-loss wasserstein, sw 50", {"style_loss": "wasserstein", "style_weight": 50.0}),
    ("--style-scale 0.5", {"style_scale": 0.5}),
    ("--style-scale 2", {"style_scale": 2.0}),
    ("adam, lr 0.02, --ema-decay 0.95", {"optimizer": "adam", "ema_decay": 0.95}),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--out", default="docs/gallery.jpg")
    a = ap.parse_args()
    content = image_io.resize(image_io.load(sample_path("chelsea.jpg")), a.size)
    style = image_io.resize(image_io.load(sample_path("swirls.png")), a.size)
    tiles, labels = [content, style], ["content", "style"]
    for label, opts in CONTROLS:
        r = stylize(content, style, iterations=a.iterations, **opts)
        tiles.append(r.image)
        labels.append(label)
        print(f"{label}: style loss {r.history['style'][0]:.3g} -> {r.history['style'][-1]:.3g}")
    t = synthesize_texture(style, style.shape[:2], iterations=a.iterations)
    tiles.append(t.image)
    labels.append("--mode texture")
    image_io.save(a.out, image_io.contact_sheet(tiles, labels, columns=4, tile=180))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
