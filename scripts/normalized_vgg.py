#!/usr/bin/env python
"""Experiment: does the paper's normalised VGG19 improve results here?

Gatys et al. rescale each filter so its mean activation over a set of images and positions is 1,
compensating in the next layer so the network computes the same function; only the activations
the losses see change scale, which reweights the layers inside the style loss. This script builds
that network from the bundled sample images, then stylizes the bundled content with both
networks. The normalised run's style weight is set so that its style/content loss ratio at a
white-noise image equals the default network's, so both spend the same relative effort on style.
It writes both results side by side and prints the full-resolution losses.

    python scripts/normalized_vgg.py [--size 128] [--iterations 200] [--out normalized_vgg.jpg]
"""

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst import image_io
from jaxnst.cli.command import sample_path
from jaxnst.model import vgg, weights
from jaxnst.stylize import Options, features, stylize


def normalize(variables, images):
    """Per-filter mean activation 1 over ``images``; the next layer absorbs the scale."""
    params = jax.tree.map(lambda x: np.array(x, np.float64), variables["params"])
    for i, name in enumerate(vgg.LAYERS):
        v = {"params": jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)}
        acts = [np.asarray(features(im, [name], variables=v)[name], np.float64) for im in images]
        mean = np.mean([a.mean(axis=(0, 1)) for a in acts], axis=0)
        s = np.where(mean > 1e-8, mean, 1.0)
        params[name]["kernel"] /= s
        params[name]["bias"] /= s
        if i + 1 < len(vgg.LAYERS):
            params[vgg.LAYERS[i + 1]]["kernel"] *= s[None, None, :, None]
    return {"params": jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--out", default="normalized_vgg.jpg")
    a = ap.parse_args()
    variables, _ = weights.load_variables()
    content = image_io.resize(image_io.load(sample_path("chelsea.jpg")), a.size)
    style = image_io.resize(image_io.load(sample_path("swirls.png")), a.size)
    norm = normalize(
        variables,
        [
            image_io.resize(image_io.load(sample_path(n)), 256)
            for n in ("chelsea.jpg", "swirls.png")
        ],
    )
    sw = Options().style_weight
    # Both losses at the same white-noise image measure each network's style/content scale.
    probe = {
        k: stylize(content, style, variables=v, iterations=1, init="noise")
        for k, v in (("default", variables), ("normalized", norm))
    }
    ratio = {k: r.history["style"][0] / r.history["content"][0] for k, r in probe.items()}
    sw_norm = sw * ratio["default"] / ratio["normalized"]
    r0 = stylize(content, style, variables=variables, iterations=a.iterations)
    # The matched weight, and 10x and 100x more style (one batched sweep), for a fair look.
    sws = [sw_norm, 10 * sw_norm, 100 * sw_norm]
    r1 = stylize(content, style, variables=norm, iterations=a.iterations, style_weight=sws)
    print(
        f"default: style loss {r0.history['style'][0]:.3g} -> {r0.history['style'][-1]:.3g} "
        f"({1 - r0.history['style'][-1] / r0.history['style'][0]:.1%} lower)"
    )
    for i, w in enumerate(sws):
        h = r1.history["style"][i]
        print(
            f"normalised, style weight {w:.3g}: style loss {h[0]:.3g} -> {h[-1]:.3g} "
            f"({1 - h[-1] / h[0]:.1%} lower)"
        )
    image_io.save(
        a.out,
        image_io.contact_sheet(
            [r0.image, *r1.image],
            ["default VGG19"] + [f"normalised, sw {w:.3g}" for w in sws],
            tile=200,
        ),
    )
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
