"""The exact objective, tile by tile (issue 13): images larger than memory, same loss and gradient.

The style loss depends on each layer's *global* Gram matrix, but once dL/dG is known its gradient
with respect to the activation at one position is local (``2 dL/dG f / M``); the content and TV
terms are local. So, inside the compiled program:

- pass 1 runs the network over tiles, each an interior of ``tile`` x ``tile`` px plus a halo of
  :func:`halo` px (at least VGG19's receptive-field radius up to the deepest layer used), and sums
  each layer's Gram and the content term over the interior positions only;
- pass 2 runs each tile again with :func:`jax.vjp` and pulls back the cotangent of its interior
  positions (from the global dL/dG and the content term), adding the input gradients of all tiles.

Peak memory is one tile's activations plus image-sized buffers, whatever the image size.

Exactness: a crop's own border (zero padding where the image continues) corrupts activations
within one receptive-field radius of it, which the halo keeps away from the interior. Where the
crop extends past the image, every layer's activations are multiplied by a 0/1 map of the image's
extent at that layer (H >> b rows after b poolings), which is what SAME zero padding does at the
image border and VALID pooling does to an odd last row. Tiles and halo are multiples of 16 px (four
2x2 poolings) so every tile pools on the global grid; any image size works.
Supported: the Gram style loss (no masks), content and TV terms, the photorealism term (its own
exact tiles, :mod:`jaxnst.loss.matting_tiles`), fp32, one image; ``tileable`` and ``wasserstein``
are not (they raise).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxnst import _interrupt
from jaxnst.loss import losses, matting_tiles
from jaxnst.model import vgg

ALIGN = 16


def radius(deepest: str) -> int:
    """Receptive-field radius in input pixels of a position at layer ``deepest``: each 3x3
    convolution adds its stride, each 2x2 pool half its output stride (85 px for conv5_1)."""
    r, stride, k = 0, 1, 0
    last = vgg.LAYERS.index(deepest)
    for n in vgg.BLOCKS:
        for _ in range(n):
            if k > last:
                return r
            r, k = r + stride, k + 1
        if k > last:
            return r
        r, stride = r + stride, stride * 2
    return r


def halo(layers: tuple[str, ...]) -> int:
    """The halo, in px: the radius of the deepest layer, rounded up to a multiple of 16."""
    deepest = max(layers, key=vgg.LAYERS.index)
    return -(-radius(deepest) // ALIGN) * ALIGN


def area(h: int, w: int, t: int, layers: tuple[str, ...]) -> float:
    """The pixels a tiled evaluation computes per pixel of the (h, w) image: every tile's crop
    (tile plus halo on each side, whole even where the image ends), ``ceil(h/t) * ceil(w/t)``
    of them."""
    return math.ceil(h / t) * math.ceil(w / t) * (t + 2 * halo(layers)) ** 2 / (h * w)


def _masked_features(crop, masks, variables, layers, pooling):
    """VGG19 activations of a (S, S, 3) crop, each layer multiplied by the image's extent at its
    resolution (``masks[b]``: (S / 2**b,) * 2, 0/1): zero outside the image at every layer, as SAME
    padding at the image border, and past the rows and columns a VALID pool drops."""
    last = max(vgg.LAYERS.index(n) for n in layers)
    p = variables["params"]
    x = (crop * 255.0 - jnp.asarray(vgg.MEAN_RGB, crop.dtype))[None] * masks[0][None, ..., None]
    out, k = {}, 0
    for b, n in enumerate(vgg.BLOCKS):
        m = masks[b]
        for _ in range(n):
            if k > last:
                return out
            name = vgg.LAYERS[k]
            kernel = p[name]["kernel"]
            kt = variables.get("backward", {}).get(name, {}).get("kernel_t")
            kt = vgg.backward_kernel(kernel) if kt is None else kt
            x = vgg._conv_relu(x, kernel, p[name]["bias"], kt, True) * m[None, ..., None]
            if name in layers:
                out[name] = x[0]
            k += 1
        if k > last:
            return out
        # A window astride the image's odd last row is past the pooled extent: zero it, as the
        # global VALID pool drops it and the next SAME convolution pads with zeros there.
        x = vgg._pool(x, pooling, b) * masks[b + 1][None, ..., None]
    return out


class _Grid:
    """Tile geometry for an (H, W) image: ``ny`` x ``nx`` tiles of ``t`` px, halo ``h``."""

    def __init__(self, hw: tuple[int, int], t: int, h: int):
        self.hw, self.t, self.h = hw, t, h
        self.ny, self.nx = math.ceil(hw[0] / t), math.ceil(hw[1] / t)
        self.crop = t + 2 * h

    def pad(self, a: jax.Array, scale: int = 1) -> jax.Array:
        """(H/s, W/s, ...) -> zero-padded by the halo and up to whole tiles, at stride ``s``."""
        h, t = self.h // scale, self.t // scale
        extra = ((0, 0),) * (a.ndim - 2)
        return jnp.pad(
            a, ((h, self.ny * t - a.shape[0] + h), (h, self.nx * t - a.shape[1] + h), *extra)
        )

    def origins(self) -> jax.Array:
        ys, xs = jnp.meshgrid(
            jnp.arange(self.ny) * self.t, jnp.arange(self.nx) * self.t, indexing="ij"
        )
        return jnp.stack([ys.ravel(), xs.ravel()], -1)


def _check(image, targets, config, tile):
    h, w = image.shape[:2]
    if tile % ALIGN or tile <= 0:
        raise ValueError(f"tile must be a positive multiple of {ALIGN} px, got {tile}")
    if min(h, w) < ALIGN:
        raise ValueError(f"tiled evaluation needs sides of {ALIGN} px at least, got {w}x{h}")
    if getattr(config, "extra_loss", None) is not None or targets.warped is not None:
        raise ValueError("tiled evaluation does not support extra_loss or the temporal term")
    if targets.masks or targets.moments or config.tileable or config.precision != "fp32":
        raise ValueError(
            "tiled evaluation supports the Gram style loss in fp32 without masks or tileable"
        )


def _regions(grid, hw):
    """Per pooling level b, the image's extent (H >> b, W >> b) as a padded 0/1 map."""
    return [grid.pad(jnp.ones((hw[0] >> b, hw[1] >> b), jnp.float32), 2**b) for b in range(5)]


def _tile_fn(grid, variables, config, regions):
    """(masks_at, interior) for tiles at ``origin`` (y, x): the crop's extent maps per level and
    the 0/1 map of a layer's interior positions that lie in the image."""

    def masks_at(origin):
        return [
            lax.dynamic_slice(r, (origin[0] >> b, origin[1] >> b), (grid.crop >> b,) * 2)
            for b, r in enumerate(regions)
        ]

    def interior(name, origin):
        s = _stride(name)
        m = masks_at(origin)[s.bit_length() - 1]
        keep = (
            jnp.zeros_like(m)
            .at[grid.h // s : (grid.h + grid.t) // s, grid.h // s : (grid.h + grid.t) // s]
            .set(1.0)
        )
        return m * keep

    return masks_at, interior


def _stride(name: str) -> int:
    return 2 ** (int(name[4]) - 1)


def _pass1(image, variables, targets, config, tile):
    """Gram sums and content sums over the interiors: (grams, content loss per layer)."""
    grid = _Grid(image.shape[:2], tile, halo(config.layers))
    img_pad = grid.pad(image)
    masks_at, interior = _tile_fn(grid, variables, config, _regions(grid, image.shape[:2]))
    cpad = {n: grid.pad(p, _stride(n)) for n, p in targets.content.items()}

    def one(origin):
        crop = lax.dynamic_slice(img_pad, (origin[0], origin[1], 0), (grid.crop, grid.crop, 3))
        f = _masked_features(crop, masks_at(origin), variables, config.layers, config.pooling)
        out = {}
        for n in targets.grams:
            x = f[n] * interior(n, origin)[..., None]
            out["g" + n] = jnp.einsum("hwc,hwd->cd", x, f[n])
        for n in targets.content:
            s = _stride(n)
            p = lax.dynamic_slice(cpad[n], (origin[0] // s, origin[1] // s, 0), f[n].shape)
            d = (f[n] - p) * interior(n, origin)[..., None]
            out["c" + n] = jnp.sum(d * d)
        return out

    sums = lax.map(_stoppable(one, config, 1, grid), _numbered(grid))
    sums = {k: jnp.sum(v, 0) for k, v in sums.items()}
    h, w = image.shape[:2]
    grams = {n: sums["g" + n] / ((h // _stride(n)) * (w // _stride(n))) for n in targets.grams}
    content = {n: 0.5 * sums["c" + n] / targets.content[n].size for n in targets.content}
    return grams, content, grid


# --------------------------------------------------------------------------- the targets, tiled
# A print-size run's targets are one forward pass each, but of the whole image: at 4096x3072 the
# style image's Grams alone took 17.6 GiB of XLA temporaries (the descent, tiled, ~10 GiB), and
# the kernel killed the run while the tiles' memory model said 8 GiB. The same tiles compute them.


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def grams(image, variables, layers: tuple[str, ...], pooling: str, tile: int) -> dict:
    """``{layer: (C, C) Gram}`` of an (H, W, 3) image as :func:`jaxnst.loss.losses.gram` of the
    whole image's features gives it (sum over positions / positions), one tile at a time."""
    grid = _Grid(image.shape[:2], tile, halo(layers))
    img_pad = grid.pad(image)
    masks_at, interior = _tile_fn(grid, variables, None, _regions(grid, image.shape[:2]))

    def one(origin):
        crop = lax.dynamic_slice(img_pad, (origin[0], origin[1], 0), (grid.crop, grid.crop, 3))
        f = _masked_features(crop, masks_at(origin), variables, layers, pooling)
        return {n: jnp.einsum("hwc,hwd->cd", f[n] * interior(n, origin)[..., None], f[n])
                for n in layers}  # fmt: skip

    sums = jax.tree.map(lambda v: jnp.sum(v, 0), lax.map(one, grid.origins()))
    h, w = image.shape[:2]
    return {n: sums[n] / ((h // _stride(n)) * (w // _stride(n))) for n in layers}


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def features(image, variables, layers: tuple[str, ...], pooling: str, tile: int) -> dict:
    """``{layer: (H', W', C)}`` activations of an (H, W, 3) image, each tile's interior
    positions computed from its crop and put in place (the whole image's values)."""
    grid = _Grid(image.shape[:2], tile, halo(layers))
    img_pad = grid.pad(image)
    masks_at, _ = _tile_fn(grid, variables, None, _regions(grid, image.shape[:2]))

    def one(origin):
        crop = lax.dynamic_slice(img_pad, (origin[0], origin[1], 0), (grid.crop, grid.crop, 3))
        f = _masked_features(crop, masks_at(origin), variables, layers, pooling)
        out = {}
        for n in layers:
            a, b = grid.h // _stride(n), (grid.h + grid.t) // _stride(n)
            out[n] = f[n][a:b, a:b]
        return out

    per_tile = lax.map(one, grid.origins())
    h, w = image.shape[:2]
    out = {}
    for n in layers:
        t = per_tile[n]  # (ny * nx, t/s, t/s, C)
        _, ts, _, c = t.shape
        full = t.reshape(grid.ny, grid.nx, ts, ts, c).transpose(0, 2, 1, 3, 4)
        size = _size_at(h, w, n)
        out[n] = full.reshape(grid.ny * ts, grid.nx * ts, c)[: size[0], : size[1]]
    return out


def _size_at(h: int, w: int, name: str) -> tuple[int, int]:
    """A layer's feature-map size for an (H, W) input: VALID 2x2 pools floor each side."""
    for _ in range(int(name[4]) - 1):
        h, w = h // 2, w // 2
    return h, w


def _combine(image, grams, content, targets, weights, config):
    zero = jnp.zeros((), jnp.float32)
    lc = sum(content.values()) / len(content) if content else zero
    ls = (
        (
            sum(
                jnp.sum((grams[n] - a) ** 2) / (4.0 * a.shape[0] ** 2)
                for n, a in targets.grams.items()
            )
            / len(targets.grams)
        )
        if targets.grams
        else zero
    )
    lt = losses.tv_loss(image)
    total = weights.content * lc + weights.style * ls + weights.tv * lt
    return losses.Parts(total, lc, ls, lt)


def parts(image, variables, targets, weights, config, tile: int) -> losses.Parts:
    """The loss parts of :func:`jaxnst.optim.optimize.parts_fn` for one (H, W, 3) float32 image,
    computed tile by tile; differentiable (pass 2 is the backward)."""
    _check(image, targets, config, tile)
    out = _tiled_parts(image, variables, targets, weights, config, tile)
    if targets.matting is None or weights.photoreal is None:
        return out  # (photorealism: in the total, as untiled; its own tiles with a halo of 2r)
    e = matting_tiles.energy(targets.matting, image, tile)
    return out._replace(total=out.total + weights.photoreal * e)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _tiled_parts(image, variables, targets, weights, config, tile):
    grams, content, _ = _pass1(image, variables, targets, config, tile)
    return _combine(image, grams, content, targets, weights, config)


def _fwd(image, variables, targets, weights, config, tile):
    grams, content, _ = _pass1(image, variables, targets, config, tile)
    out = _combine(image, grams, content, targets, weights, config)
    return out, (image, variables, targets, weights, grams, out)


def _bwd(config, tile, res, ct):
    image, variables, targets, weights, grams, out = res
    # Cotangents of the weighted terms: the total's, plus any on the parts themselves.
    a_c = ct.total * weights.content + ct.content
    a_s = ct.total * weights.style + ct.style
    a_t = ct.total * weights.tv + ct.tv
    h, w = image.shape[:2]
    # dE/dG per layer, already times 2 / M: the cotangent of f at a position is f @ dg.
    dg = {
        n: a_s
        / len(targets.grams)
        * 2.0
        * (grams[n] - a)
        / (4.0 * a.shape[0] ** 2)
        * 2.0
        / ((h // _stride(n)) * (w // _stride(n)))
        for n, a in targets.grams.items()
    }
    grad_pad = _pass2(image, variables, targets, config, tile, dg, a_c)
    d = halo(config.layers)
    _, tv_vjp = jax.vjp(losses.tv_loss, image)
    d_image = grad_pad[d : d + h, d : d + w] + tv_vjp(a_t)[0]
    zeros = lambda t: jax.tree.map(jnp.zeros_like, t)  # noqa: E731
    d_weights = weights._replace(
        content=ct.total * out.content, style=ct.total * out.style, tv=ct.total * out.tv
    )
    for k in ("temporal", "photoreal"):  # (neither is in this total)
        if getattr(weights, k) is not None:
            d_weights = d_weights._replace(**{k: jnp.zeros_like(getattr(weights, k))})
    return d_image, zeros(variables), zeros(targets), d_weights


def _pass2(image, variables, targets, config, tile, dg, a_c):
    """Sum over tiles of each crop's input gradient (padded image coordinates)."""
    grid = _Grid(image.shape[:2], tile, halo(config.layers))
    img_pad = grid.pad(image)
    masks_at, interior = _tile_fn(grid, variables, config, _regions(grid, image.shape[:2]))
    cpad = {n: grid.pad(p, _stride(n)) for n, p in targets.content.items()}
    size = (grid.crop, grid.crop)

    def one(g, origin):
        crop = lax.dynamic_slice(img_pad, (origin[0], origin[1], 0), (*size, 3))
        mask = masks_at(origin)
        f, vjp = jax.vjp(
            lambda c: _masked_features(c, mask, variables, config.layers, config.pooling), crop
        )
        cot = {n: jnp.zeros_like(v) for n, v in f.items()}
        for n in targets.grams:
            cot[n] = cot[n] + (f[n] @ dg[n]) * interior(n, origin)[..., None]
        for n in targets.content:
            s = _stride(n)
            p = lax.dynamic_slice(cpad[n], (origin[0] // s, origin[1] // s, 0), f[n].shape)
            scale = a_c / len(targets.content) / targets.content[n].size
            cot[n] = cot[n] + scale * (f[n] - p) * interior(n, origin)[..., None]
        (dcrop,) = vjp(cot)
        at = (origin[0], origin[1], 0)
        return lax.dynamic_update_slice(g, lax.dynamic_slice(g, at, dcrop.shape) + dcrop, at), None

    def step(g, numbered):
        i, origin = numbered
        if not getattr(config, "interruptible", False):
            return one(g, origin)
        stop = _interrupt.requested(jnp.int32(2), i, jnp.int32(grid.ny * grid.nx))
        return lax.cond(stop, lambda: (g, None), lambda: one(g, origin))

    g, _ = lax.scan(step, jnp.zeros_like(img_pad), _numbered(grid))
    return g


def _numbered(grid: _Grid) -> tuple[jax.Array, jax.Array]:
    """(tile index, origin) of every tile, for the loops over them."""
    origins = grid.origins()
    return jnp.arange(origins.shape[0], dtype=jnp.int32), origins


def _stoppable(one, config, pass_no: int, grid: _Grid):
    """``one(origin)`` for ``lax.map`` over the numbered tiles: each tile tells the host it
    starts (progress) and is skipped (zeros) once Ctrl-C asked the program to wind down
    (:mod:`jaxnst._interrupt`; the evaluation is then discarded)."""

    def tile(numbered):
        i, origin = numbered
        if not getattr(config, "interruptible", False):
            return one(origin)
        skip = lambda: jax.tree.map(jnp.zeros_like, jax.eval_shape(one, origin))  # noqa: E731
        stop = _interrupt.requested(jnp.int32(pass_no), i, jnp.int32(grid.ny * grid.nx))
        return lax.cond(stop, skip, lambda: one(origin))

    return tile


_tiled_parts.defvjp(_fwd, _bwd)
