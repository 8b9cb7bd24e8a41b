"""The programs that compute the targets (content activations, style Grams) once per run: compiled
like the descent programs (:func:`jaxnst.optim.programs._program`), for the same CPU compiler
options and ahead-of-time handling."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnst.loss import neighbours
from jaxnst.model import vgg
from jaxnst.optim.programs import _program


class _Net(NamedTuple):  # a target program's static part (``config`` of ``_program``)
    layers: tuple[str, ...]
    pooling: str
    channels: tuple[int, ...]
    xla_cpu_ynn: bool = False


# Compiled as the descent is (``_program``: CPU_COMPILER_OPTIONS), which at 384 px took the targets
# from 0.39 + 0.83 s to 0.31 + 0.67 s (content to conv4_2, a style's Grams) on our CPU machine.
@_program
def _net_features(image, variables, config: _Net):
    return vgg.VGG19(pooling=config.pooling, channels=config.channels).apply(
        variables, image, config.layers
    )


@_program
def _net_grams(image, variables, config: _Net):
    """One style image's ``{layer: (C, C) Gram}``, features and Grams in one program (eagerly,
    the Grams took six small programs per layer)."""
    feats = _net_features.__wrapped__(image, variables, config)
    return {n: _target_gram(feats[n]) for n in config.layers}


def _features(image, variables, layers, pooling, channels):
    return _net_features(image, variables, config=_Net(tuple(layers), pooling, tuple(channels)))


def _style_grams(image, variables, layers, pooling, channels):
    return _net_grams(image, variables, config=_Net(tuple(layers), pooling, tuple(channels)))


def _target_gram(f: jax.Array) -> jax.Array:
    """:func:`jaxnst.loss.losses.gram` bit for bit as its eager form computes it. Inside a jit XLA
    folds the transpose into the product, which changes the last bit of some entries, and L-BFGS
    carries that far (mean 4/255 on the image after 50 iterations at 128 px); the barrier keeps
    the transpose, so the targets, and the images, stay what they were."""
    h, w, c = f.shape
    x = f.reshape(h * w, c).astype(jnp.float32)
    return (jax.lax.optimization_barrier(x.T) @ x) / (h * w)


def final_pass(o) -> bool:
    """Whether a run is NNST's final pass: its style term with ``nnst_final_steps`` above 0 in
    a single-scale run (:func:`jaxnst.pipeline.multiscale.coarse_to_fine` runs it last)."""
    return o.style_loss == "nnst" and bool(o.nnst_final_steps) and not o.scales


def _nnst_features(variables, o):
    config = _Net(neighbours.LAYERS, o.pooling, vgg.channels_of(variables))
    return lambda image: _net_features(image, variables, config=config)


def nnst_targets(contents, styles, variables, o, masks=None, style_masks=None):
    """NNST's targets (:mod:`jaxnst.loss.neighbours`) when its terms are in use, else None:
    the content's hypercolumns and their nearest style neighbours, computed once per run (per
    scale of a coarse-to-fine run; none in the final pass, which matches at every step).
    ``style_masks`` (R, H_s, W_s) pair the one style's regions with ``masks``' (labels)."""
    c_on, s_on = o.content_loss == "nnst", o.style_loss == "nnst" and not final_pass(o)
    if not (c_on or s_on or final_pass(o)):
        return None
    feats = _nnst_features(variables, o)
    return neighbours.make(
        contents, styles, feats, c_on, s_on, o.nnst_rotations, masks, style_masks
    )


def nnst_final(styles, variables, o):
    """The final pass's style maps (:class:`jaxnst.loss.neighbours.Final`), else None."""
    if not final_pass(o):
        return None
    return neighbours.final_style(styles, _nnst_features(variables, o), o.nnst_rotations)


def layer_masks(masks: Any, layers: Sequence[str]) -> dict[str, jax.Array]:
    """(R, H, W) guidance masks -> {layer: (R, H_l, W_l)}, average-pooled 2x2 like VGG19 (one
    program: eagerly, each pooling was a few small programs to compile)."""
    return _layer_masks(jnp.asarray(masks, jnp.float32), tuple(layers))


@partial(jax.jit, static_argnums=1)
def _layer_masks(m: jax.Array, layers: tuple[str, ...]) -> dict[str, jax.Array]:
    out, block = {}, 1
    for n in vgg.LAYERS:
        b = int(n[4])
        while block < b:
            r, h, w = m.shape
            m = m[:, : h // 2 * 2, : w // 2 * 2].reshape(r, h // 2, 2, w // 2, 2).mean((2, 4))
            block += 1
        if n in layers:
            out[n] = m
    return out
