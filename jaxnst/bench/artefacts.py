"""Artefacts of stylized images, measured (issue 29), for the race of ``scripts/bench.py
--feedforward --ff-race``: the network's outputs against the descent's on the same photos.

- :func:`checkerboard_energy`: the share of the luma's spectral power on the frequency lines of
  2 and 4 px periods (the rows and columns of the 2-D spectrum at 1/2, 1/4 and 3/4 of the
  sampling rate; what transposed convolutions' checkerboards, Odena et al. 2016, put there),
  divided by the same share in the content photo: 1 adds nothing periodic, more adds that much.
- :func:`border_interior`: the content layer's feature error ``|F(y) - F(x)|^2`` per position,
  averaged over the band of positions within 1/8 of the feature map's side from an edge, divided
  by its average over the rest: above 1, the image's border is worse than its interior
  (padding effects).
"""

from __future__ import annotations

import numpy as np

from jaxnst.loss import color


def _line_share(image: np.ndarray) -> float:
    y = np.asarray(color.luma(np.asarray(image, np.float32)), np.float64)
    p = np.abs(np.fft.fft2(y - y.mean())) ** 2
    h, w = p.shape
    rows = sorted({h // 2, h // 4, 3 * h // 4} - {0})
    cols = sorted({w // 2, w // 4, 3 * w // 4} - {0})
    on = np.zeros_like(p, bool)
    on[rows, :] = True
    on[:, cols] = True
    return float(p[on].sum() / max(p.sum(), 1e-30))


def checkerboard_energy(output: np.ndarray, content: np.ndarray) -> float:
    """(H, W, 3) output and its content photo -> the output's share of power at 2 and 4 px
    periods over the content's."""
    return _line_share(output) / max(_line_share(content), 1e-30)


def border_interior(features_out: np.ndarray, features_content: np.ndarray) -> float:
    """(h, w, C) content-layer features of the output and of the content -> the error's mean in
    the border band over its mean in the interior."""
    e = np.sum((np.asarray(features_out, np.float64) - features_content) ** 2, axis=-1)
    h, w = e.shape
    bh, bw = max(1, h // 8), max(1, w // 8)
    inner = np.zeros_like(e, bool)
    inner[bh : h - bh, bw : w - bw] = True
    return float(e[~inner].mean() / max(e[inner].mean(), 1e-30))
