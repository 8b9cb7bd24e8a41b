"""Memory preflight (issue 13): will a run fit, decided before anything is compiled.

A run that does not fit used to grow until the kernel killed it (SIGKILL, no message, minutes
in). :func:`check` estimates the descent's peak from a per-pixel model of the compiled step and
compares it with what the device has; :class:`MemoryRefused` carries the one line the CLI prints
(exit 4): the estimate, what is available and the largest size that would fit.

The model (bytes, for B members of H x W pixels):

    step = B * H * W * (ACT_FACTOR * bytes(precision) * A + 2 * 4 * 3 * (2 * lbfgs_memory + 8))
    peak = resident now + OVERHEAD + step

where A = sum over the VGG layers computed of channels / 4**(pools before the layer): the
activations per input pixel (290 floats for the 16 layers up to conv5_1). ACT_FACTOR is the
number of copies XLA keeps of each (the activation, the ReLU's input, the backward's cotangent).
The second term is the L-BFGS history (2 * memory image-sized vectors) and ~8 more image-sized
buffers (iterate, gradient, line-search trial, best image...), twice (:data:`STATE_COPIES`).
OVERHEAD is what the CPU process adds while compiling and running beyond the resident weights and
images.

Calibration (this CPU, tubingen x starry_night, 1 L-BFGS iteration, /usr/bin/time -v): peak RSS
1.34 GiB at 512x384 and 2.73 GiB at 1024x768, i.e. 2.5 KiB per pixel more and 0.6 GiB of fixed
overhead beyond the ~0.3 GiB resident before the descent; hence ACT_FACTOR 1.9 (XLA's
``compiled.memory_analysis()`` puts the chunk's temporaries at 1.8-2.0 KiB per pixel with the full
network, the issue's ~1.9 KiB) and OVERHEAD 0.6 GiB. Those two runs fixed the constants, so they
are not an independent check; the model is within 30 % of XLA's buffer assignment for a small
network (tests/test_print_memory.py). :func:`xla_estimate` gives XLA's own figure for a
configuration (it compiles, so it is for benchmarks and tests, not the preflight).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

from jaxnst.model import vgg

ACT_FACTOR = 1.9
OVERHEAD = 0.6 * 2**30  # CPU: compilation and runtime buffers beyond what is resident before
LIMIT_ENV = "JAXNST_MEMORY_LIMIT"  # pretend limit ("2G", "512M", bytes), or "off"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class MemoryRefused(RuntimeError):
    """The run will not fit. ``str()`` is one line: estimate, available, what would fit."""


class Estimate(NamedTuple):
    step: int  # bytes the descent adds (activations, gradients, optimizer state)
    resident: int  # bytes this process holds now (weights, images, the runtime)
    available: int  # bytes it may still take
    source: str  # where ``available`` came from
    tile: int | None = None  # the tile size chosen when the untiled descent will not fit
    untiled: int = 0  # bytes the untiled descent would need (when a tile was chosen)


def activations_per_pixel(layers: tuple[str, ...], channels: tuple[int, ...]) -> float:
    """Floats of activation per input pixel for a network computed up to the deepest of
    ``layers``: sum of channels / 4**block over the convolutions."""
    last = max(vgg.LAYERS.index(n) for n in layers)
    total, k = 0.0, 0
    for b, n in enumerate(vgg.BLOCKS):
        for _ in range(n):
            if k <= last:
                total += channels[b] / 4**b
            k += 1
    return total


def step_bytes(
    h: int,
    w: int,
    members: int,
    layers: tuple[str, ...],
    channels: tuple[int, ...] = vgg.CHANNELS,
    precision: str = "fp32",
    lbfgs_memory: int = 10,
) -> int:
    """The model above: bytes a descent step of ``members`` (H, W) images adds."""
    width = 2 if precision == "bf16" else 4
    per_px = ACT_FACTOR * width * activations_per_pixel(layers, channels)
    per_px += STATE_COPIES * 4 * 3 * (2 * lbfgs_memory + 8)
    return int(members * h * w * per_px)


# The image-sized state (L-BFGS history, iterate, gradient, ...) lives twice while a chunk runs:
# its argument and its result (the state is not donated, so Ctrl-C keeps the last completed
# chunk's). XLA's buffer assignment of the tiled chunk at 4096x3072 px: arguments 4.27 GiB,
# results 3.80 GiB, temporaries 1.78 GiB; the model counted the state once and said 7.1 GiB.
STATE_COPIES = 2
# Tile sizes the preflight tries. Of those that fit it takes the one whose crops cover the least
# area (the halo costs (1 + 2 * 96 / tile)^2, partial tiles a whole crop; jaxnst.loss.tiled.area):
# a tiled evaluation's time follows that area (scripts/bench_tiles.py: 1.7 s-units per computed
# pixel at 1024 and 2048 px). At 4096x3072 on 22 GiB: 1024 px tiles, 0.75x 512 px tiles' area.
TILES = (1024, 768, 512, 384, 256, 192, 128, 96, 64)
# Measured: one tiled evaluation at 1024x768 px in 256 px tiles peaked at 2.19 GiB RSS, 0.8 GiB
# above the crop-and-image model; charged to the crop's activations (both passes hold a crop's
# worth, plus XLA's scan buffers). One measurement: an upper-side guess, not a fit.
TILED_FACTOR = 2.5


def tiled_step_bytes(
    h: int,
    w: int,
    members: int,
    layers: tuple[str, ...],
    tile: int,
    channels: tuple[int, ...] = vgg.CHANNELS,
    lbfgs_memory: int = 10,
) -> int:
    """Bytes a tiled descent step (:mod:`jaxnst.loss.tiled`, fp32) adds: one crop's activations
    (tile plus halo on each side) and the image-sized buffers (L-BFGS state, the padded image and
    its gradient)."""
    from jaxnst.loss import tiled

    crop = tile + 2 * tiled.halo(layers)
    act = TILED_FACTOR * ACT_FACTOR * 4 * activations_per_pixel(layers, channels) * crop**2
    images = 4 * 3 * (STATE_COPIES * (2 * lbfgs_memory + 8) * h * w + 3 * (h + crop) * (w + crop))
    return int(members * (act + images))


def sampled_bytes(
    members: int,
    options: Any,
    channels: tuple[int, ...] = vgg.CHANNELS,
    shape: tuple[int, int] = (512, 512),
    regions: int = 0,
) -> int:
    """Bytes STROTSS's sampled terms add (:mod:`jaxnst.loss.sampled`; 0 when not in use): the
    content's hypercolumns at the grid (G x D per member), the style's (S x D), and per
    evaluation the output's (P x D, a few copies with the gradient), the cost matrices' blocks
    (P x CHUNK, REMD and palette, forward and backward) and the P x P self-similarities. Size-
    independent: the points are counted, not the pixels. With ``regions`` content masks the
    style term holds each style's S points and covariance, and each region's output covariance
    (and its gradient) per evaluation."""
    from jaxnst.loss import sampled

    if options.style_loss != "remd" and options.content_loss != "self_similarity":
        return 0
    d = 3 + sum(channels[int(n[4]) - 1] for n in sampled.LAYERS)
    p, g = options.samples, sampled.GRID_POINTS
    content = g * d * (options.content_loss == "self_similarity")
    r = max(regions, 1) if options.style_loss == "remd" else 1
    style = r * (options.style_samples + d) * d * (options.style_loss == "remd")  # points, cov
    per_eval = 4 * p * d + 6 * p * sampled.CHUNK + 6 * p * p + (r - 1) * 2 * d * d
    targets = 4 * (members * content + style)
    stages = _stages(options, shape)
    # Coarse-to-fine holds more than its largest stage: STROTSS at 512 px (four stages) peaked
    # at 3.45 GiB RSS against 1.89 GiB for its last stage alone (2.20 GiB compiling it cold).
    # Charged as every stage's targets alive at once, and one program compiling ahead.
    ahead = (stages - 1) * targets + (OVERHEAD if stages > 1 else 0)
    return int(targets + 4 * members * per_eval + ahead)


def nnst_bytes(
    members: int,
    options: Any,
    channels: tuple[int, ...] = vgg.CHANNELS,
    shape: tuple[int, int] = (512, 512),
) -> int:
    """Bytes NNST's terms add (:mod:`jaxnst.loss.neighbours`; 0 when not in use), for a style of
    about the content's area (``style_scale`` 1): per member the Q = (H / 4)(W / 4) target and
    content rows of D channels; the style bank (Q rows, four times with ``nnst_rotations``) and
    the search's CHUNK x K similarities while the targets are made; per evaluation the output's
    hypercolumns, a few copies with the gradient. Coarse-to-fine: the earlier stages' targets
    (each a quarter of the next: a third of the last's in all) and one program compiling ahead.
    The final pass (``nnst_final_steps``) holds the style's eleven layers at the full size (each
    rotation's) beside an evaluation's. A model from the shapes, not yet measured against a
    run."""
    from jaxnst.loss import neighbours

    if "nnst" not in (options.style_loss, options.content_loss):
        return 0
    d = sum(channels[int(n[4]) - 1] for n in neighbours.LAYERS)
    q = max(1, shape[0] // 4) * max(1, shape[1] // 4)
    k = q * (4 if getattr(options, "nnst_rotations", False) else 1)
    sets = (options.style_loss == "nnst") + (options.content_loss == "nnst")
    targets = 4 * members * q * d * sets
    search = 4 * (k * d + 2 * neighbours.CHUNK * k) * (options.style_loss == "nnst")
    per_eval = 4 * 4 * members * q * d
    stages = _stages(options, shape)
    ahead = targets // 3 + OVERHEAD if stages > 1 else 0
    return int(targets + max(search, per_eval + _nnst_final(options, channels, shape)) + ahead)


def _nnst_final(options: Any, channels: tuple[int, ...], shape: tuple[int, int]) -> int:
    """Bytes of the final pass's style maps (0 without it): float32, per pixel the sum over the
    layers of C / 4^(block - 1), four times with rotations."""
    n = getattr(options, "nnst_final_steps", 0)
    on = n > 0 if n is not None else options.method == "nnst" and options.scales is not None
    if options.style_loss != "nnst" or not on:
        return 0
    from jaxnst.loss import neighbours

    per_px = sum(channels[int(x[4]) - 1] / 4 ** (int(x[4]) - 1) for x in neighbours.LAYERS)
    return int(4 * (4 if options.nnst_rotations else 1) * shape[0] * shape[1] * per_px)


def photoreal_bytes(
    members: int, options: Any, shape: tuple[int, int] = (512, 512), tile: int | None = None
) -> int:
    """Bytes the Matting Laplacian adds (:mod:`jaxnst.loss.matting`; 0 when not in use): with
    ``photoreal_weight``, the content's window statistics (15 floats a pixel: colours, means, a
    3x3 factor) and per evaluation and member ~32 floats a pixel (the window fits and ``L x``,
    kept for the gradient); in ``tile`` px tiles (:mod:`jaxnst.loss.matting_tiles`), the
    statistics twice (padded), a 0/1 map and per member ~12 floats a pixel (the padded image,
    the tiles' and the assembled ``L x``, the gradient), plus one crop's 32 floats a pixel; with
    ``photoreal_smooth``, after the descent, the statistics, four conjugate-gradient images and
    one product's temporaries, the larger of the two. A model from the shapes, not yet measured
    against a run."""
    px = 4 * shape[0] * shape[1]
    descent = (15 + 32 * members) * px if _photoreal_term(options) else 0
    if descent and tile:  # (the halo: 2 px each side at the pipeline's radius 1)
        descent = (31 + 12 * members) * px + members * 32 * 4 * (tile + 4) ** 2
    smooth = (15 + 12 + 30) * px if getattr(options, "photoreal_smooth", None) else 0
    return int(max(descent, smooth))


def _stages(options: Any, shape: tuple[int, int]) -> int:
    from jaxnst.pipeline import multiscale

    if not options.scales:
        return 1
    o = multiscale.resolve(options, (*shape, 3))
    return len(multiscale.stages(o, max(shape))) if o.scales else 1


def _can_tile(options: Any) -> bool:
    return (
        options.style_loss == "gram"
        and getattr(options, "content_loss", "mse") == "mse"
        and options.precision != "bf16"
        and not options.tileable
        and getattr(options, "extra_loss", None) is None
    )


def _photoreal_term(options: Any) -> bool:
    w = getattr(options, "photoreal_weight", 0.0)
    return any(v > 0 for v in (w if isinstance(w, tuple) else (w,)))


def parse_size(text: str) -> int:
    """'2G', '512M', '1.5G' or plain bytes -> bytes. Raises ValueError."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1] if t and t[-1] in _UNITS else ""
    try:
        return int(float(t[: len(t) - len(unit)]) * _UNITS[unit])
    except ValueError:
        raise ValueError(f"{LIMIT_ENV} must be a size like 2G or 512M, got {text!r}") from None


def resident_bytes() -> int:
    """This process's resident set now (Linux /proc; 0 where unknown)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def available_bytes(device: Any = None) -> tuple[int | None, str]:
    """(bytes this process may still take, where that came from). The ``JAXNST_MEMORY_LIMIT``
    variable sets a pretend total (minus what is resident); accelerators report
    ``memory_stats()``; the CPU uses /proc/meminfo's MemAvailable. None: unknown (no check)."""
    env = os.environ.get(LIMIT_ENV, "").strip()
    if env.lower() == "off":
        return None, "off"
    if env:
        return max(parse_size(env) - resident_bytes(), 0), f"{LIMIT_ENV}={env}"
    if device is None:
        import jax

        device = jax.local_devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
            return int(free), f"{device.device_kind} memory"
        return None, "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "MemAvailable"
    except OSError:
        pass
    return None, "unknown"


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check(
    h: int,
    w: int,
    members: int,
    options: Any,
    channels: tuple[int, ...] = vgg.CHANNELS,
    device: Any = None,
    masks: int = 0,
) -> Estimate | None:
    """Raise :class:`MemoryRefused` when a descent over ``members`` (H, W) images with
    ``options`` (an :class:`~jaxnst.pipeline.options.Options`) will not fit; else return the
    estimate (None when the available memory is unknown or the check is off). ``masks``: how many
    content masks the run has (0: none; tiles do not support them). With coarse-to-fine
    (``scales``) (H, W) is the final, largest stage: the earlier ones are smaller and free their
    memory when they end."""
    available, source = available_bytes(device)
    if available is None:
        return None
    layers = tuple(options.content_layers) + tuple(options.style_layers)
    extra = sampled_bytes(members, options, channels, (h, w), int(masks))
    if extra:
        from jaxnst.loss import sampled

        layers += sampled.LAYERS
    extra += photoreal_bytes(members, options, (h, w), options.tile)
    nn = nnst_bytes(members, options, channels, (h, w))
    if nn:  # (the search's memory is gone when the descent starts: the larger of the two)
        from jaxnst.loss import neighbours

        layers, extra = layers + neighbours.LAYERS, extra + nn
    if options.tile:
        step = tiled_step_bytes(h, w, members, layers, options.tile, channels, options.lbfgs_memory)
    else:
        step = step_bytes(h, w, members, layers, channels, options.precision, options.lbfgs_memory)
    step += extra
    if getattr(options, "param", "pixels") == "laplacian":  # the pyramid: 4/3 of each image
        step += members * h * w * STATE_COPIES * 4 * 3 * (2 * options.lbfgs_memory + 8) // 3
    fixed = 0 if source.endswith(" memory") else int(OVERHEAD)  # accelerators compile on the host
    step += fixed
    est = Estimate(step, resident_bytes(), available, source)
    if step <= available:
        return est
    if not options.tile and not masks and _can_tile(options):  # the same objective, tile by tile
        from jaxnst.loss import tiled

        ok: dict[int, int] = {}
        for t in (t for t in TILES if t < max(h, w)):
            s = tiled_step_bytes(h, w, members, layers, t, channels, options.lbfgs_memory)
            s += fixed + photoreal_bytes(members, options, (h, w), t)
            if s <= available:
                ok[t] = s
        if ok:  # the fastest: the least area computed (ties: the larger tile)
            t = min(ok, key=lambda t: (tiled.area(h, w, t, layers), -t))
            return est._replace(step=ok[t], tile=t, untiled=step)
    # The largest size of the same aspect (and batch) whose step fits.
    scale = math.sqrt(max(available - fixed, 0) / (step - fixed))
    fit_h, fit_w = int(h * scale), int(w * scale)
    fits = f"{max(fit_h, fit_w)} px on the longer side" if min(fit_h, fit_w) >= 16 else "nothing"
    raise MemoryRefused(
        f"not enough memory for {w}x{h} px"
        + (f" x {members} images" if members > 1 else "")
        + f": the descent needs ~{_gib(step)} more, {_gib(available)} available ({source}); "
        f"at most {fits} would fit: try --size {max(fit_h, fit_w) // 16 * 16 or 16}"
    )


def xla_estimate(compiled: Any) -> dict[str, int]:
    """Argument, output, temporary and total bytes of a compiled program, from XLA's buffer
    assignment (``compiled.memory_analysis()``); the total counts aliased buffers once."""
    m = compiled.memory_analysis()
    out = {k: int(getattr(m, f"{k}_size_in_bytes", 0)) for k in ("argument", "output", "temp")}
    alias = int(getattr(m, "alias_size_in_bytes", 0))
    return {**{f"{k}_bytes": v for k, v in out.items()}, "total_bytes": sum(out.values()) - alias}


def preflight_line(inputs: Any) -> str | None:
    """The CLI's check (``inputs``: :class:`jaxnst.cli.inputs.Inputs`): a one-line estimate to
    print, None when unknown; raises :class:`MemoryRefused` when the run will not fit. When only
    a tiled descent fits, ``inputs.options`` is switched to it (``tile``) and the line says so."""
    from jaxnst.pipeline.layout import sweep_grid

    h, w = inputs.contents[0].shape[:2]
    n = len(inputs.contents) * sweep_grid(inputs.options)[1].shape[0]
    channels = vgg.channels_of(inputs.variables)
    masks = getattr(inputs, "masks", None)
    est = check(h, w, n, inputs.options, channels, masks=0 if masks is None else len(masks))
    if est is None:
        return None
    line = (
        f"memory: ~{_gib(est.resident + est.step)} peak estimated, {_gib(est.available)} "
        f"available ({est.source})"
    )
    if est.tile is None:
        return line
    inputs.options = dataclasses.replace(inputs.options, tile=est.tile)
    return (
        f"memory: the untiled descent needs ~{_gib(est.untiled)}, {_gib(est.available)} "
        f"available ({est.source}): evaluating in {est.tile} px tiles (same objective, "
        f"~{_gib(est.resident + est.step)} peak estimated)"
    )
