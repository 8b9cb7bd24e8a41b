"""``stylize()``: arrays in, arrays out. The :class:`Options` dataclass is the one home of every
default; the CLI derives its flags from it."""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
import threading
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst import color, losses, optimize, vgg

CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
SWEEPABLE = ("content_weight", "style_weight", "tv_weight", "seed")
MIN_SIDE = 16  # four 2x2 poolings before conv5_1 need at least 16 px per side


def _field(default, help: str, **kw):
    return dataclasses.field(default=default, metadata={"help": help, **kw})


@dataclasses.dataclass(frozen=True)
class Options:
    """Every option of :func:`stylize`, with its default.

    Default weights: content 1, style 3e-4, tv 1e4, with our normalisation (see
    :mod:`jaxnst.losses`; the numbers are not the paper's alpha/beta). Chosen on tubingen.jpg with
    starry_night.jpg and the_scream.jpg at 256 px, 500 L-BFGS iterations from the content image:
    at 1e-6 the result is barely touched (style loss -13 % after 200 iterations), at 1e-5 lightly
    tinted, at 1e-4 starry_night is strongly stylized (-97.7 %) but the_scream only reaches -90 %
    and leaves the houses photographic; at 3e-4 both are clearly stylized with the church, houses
    and river recognisable (style loss -99.1 % and -96.7 %). At 128 px 1e-3 still keeps the
    subject. The TV term is small (0.1-0.3 % of the final total); raise it for smoother results.
    Several values of ``content_weight``, ``style_weight``, ``tv_weight`` or ``seed`` make a
    batched sweep (see :func:`stylize`).
    """
    iterations: int = _field(500, "descent steps (L-BFGS iterations or Adam steps)")
    optimizer: str = _field("lbfgs", "lbfgs (paper, default) or adam", choices=("lbfgs", "adam"))
    learning_rate: float = _field(0.02, "Adam step size, in pixel units of [0, 1] (L-BFGS uses a "
                                        "line search and ignores it)")
    content_weight: float | tuple[float, ...] = _field(1.0, "weight of the content loss (alpha)")
    style_weight: float | tuple[float, ...] = _field(3e-4, "weight of the style loss (beta)")
    tv_weight: float | tuple[float, ...] = _field(1e4, "weight of the total-variation smoothness loss")
    init: str = _field("content", "starting image: content, noise (seeded), or an image file (CLI) "
                                  "/ array (API)")
    seed: int | tuple[int, ...] = _field(0, "random seed for noise init")
    pooling: str = _field("max", "max (as VGG19 was trained) or avg (the paper's choice)",
                          choices=("max", "avg"))
    content_layers: tuple[str, ...] = _field(CONTENT_LAYERS, "VGG19 layers for content")
    style_layers: tuple[str, ...] = _field(STYLE_LAYERS, "VGG19 layers for style")
    chunk: int = _field(20, "steps per compiled program call; progress is reported between chunks")
    lbfgs_memory: int = _field(10, "L-BFGS history size")
    style_blend_weights: tuple[float, ...] | None = _field(
        None, "weights of several style images (normalised to sum to 1; default: equal)")
    style_scale: float | None = _field(
        None, "resize the style so its longer side is this times the content's (API default: use "
              "the style as given; the CLI passes 1.0)")
    preserve_color: str = _field("none", "none, luminance (transfer on luma, keep the content's "
                                         "chroma) or histogram (give the style the content's "
                                         "colour mean and covariance first)",
                                 choices=("none", "luminance", "histogram"))
    style_loss: str = _field("gram", "gram (the paper's) or wasserstein (match each layer's mean "
                                     "and covariance: 2-Wasserstein distance between Gaussians)",
                             choices=("gram", "wasserstein"))
    ema_decay: float | None = _field(None, "Adam only: return an exponential moving average of "
                                           "the iterates with this decay (e.g. 0.95)")
    scales: tuple[int, ...] | None = _field(
        None, "coarse-to-fine: longer sides to optimise at first (e.g. 256,512), each stage "
              "starting from the previous result upsampled; the content's own size comes last")
    scale_iterations: tuple[int, ...] | None = _field(
        None, "iterations at each of --scales (default: --iterations at every scale)")
    linesearch: str = _field("auto", "L-BFGS line search: zoom (strong Wolfe), backtracking "
                                     "(Armijo), or auto: zoom for one image, backtracking for "
                                     "batches (see jaxnst.optimize)",
                             choices=("auto", "zoom", "backtracking"))
    precision: str = _field("fp32", "fp32, or bf16: convolutions and activations in bfloat16, "
                                    "Grams and losses in float32 (for GPUs and TPUs; see README)",
                            choices=("fp32", "bf16"))
    remat: bool = _field(False, "recompute each VGG block's activations in the backward pass "
                                "instead of storing them: less memory for larger images on GPUs "
                                "and TPUs, about one extra forward pass of compute (XLA:CPU merges "
                                "the recomputation back, so it changes nothing on the CPU)")


@dataclasses.dataclass
class Result:
    """What :func:`stylize` returns.

    image: (H, W, 3) float32 in [0, 1] (the optimised pixels, clipped).
    losses: (iterations,) float32 total loss after each L-BFGS step (for Adam: at the start of each
        step); NaN for steps not taken.
    history: dict of 1-D arrays ``step``, ``total``, ``content``, ``style``, ``tv``: the loss parts
        at the start and after every chunk (unweighted parts; ``total`` is weighted).
    evaluations: loss+gradient evaluations, line-search trials included.
    iterations: steps taken.
    compile_seconds / run_seconds: time spent compiling (tracing, lowering, XLA) vs the rest.
    diverged_at: step at which the loss or image became non-finite (image is the last finite one),
        or None.
    sweep: for a batched run, each member's value of every swept option (and ``content_index``).
    batch_evaluations: evaluations the whole batch paid for (per step, its slowest member's count).
    devices: how many devices the batch ran on (all processes together).
    compile_cache_hits: programs loaded from JAX's persistent compilation cache instead of compiled
        (the CLI turns the cache on; see ``jaxnst --help``).

    A batched run (a sweep, or several content images) puts a leading batch axis on ``image``,
    ``losses``, the history's parts, ``evaluations`` and ``iterations``; ``diverged_at`` is a list.
    """
    image: np.ndarray
    losses: np.ndarray
    history: dict[str, np.ndarray]
    evaluations: int
    iterations: int
    compile_seconds: float
    run_seconds: float
    device: str
    weights_digest: str
    diverged_at: int | None | list[int | None] = None
    options: Options | None = None
    sweep: dict[str, np.ndarray] | None = None
    batch_evaluations: int = 0
    devices: int = 1
    compile_cache_hits: int = 0


# --------------------------------------------------------------------------- compile-time accounting

_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_compile_lock = threading.Lock()
_compile_totals = {"seconds": 0.0, "compiles": 0, "cache_hits": 0}


def _on_event(event: str, duration: float, **_: Any) -> None:
    if event in _COMPILE_EVENTS:
        with _compile_lock:
            _compile_totals["seconds"] += duration
            if event == _COMPILE_EVENTS[-1]:
                _compile_totals["compiles"] += 1


def _on_count(event: str, **_: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":  # a program loaded from the persistent cache
        with _compile_lock:
            _compile_totals["cache_hits"] += 1


jax.monitoring.register_event_duration_secs_listener(_on_event)
jax.monitoring.register_event_listener(_on_count)


def compile_stats() -> dict[str, float]:
    """Process-wide totals: seconds spent compiling, number of XLA compilations (a program loaded
    from the persistent cache counts as one, with its loading time), and persistent-cache hits."""
    with _compile_lock:
        return dict(_compile_totals)


# --------------------------------------------------------------------------- validation

def _as_images(x, name: str) -> jax.Array:
    a = jnp.asarray(x)
    if a.ndim != 4 or a.shape[0] < 1:
        raise ValueError(f"{name} must be (H, W, 3) or (N, H, W, 3), got shape {tuple(a.shape)}")
    _as_image(a[0], name)
    return a.astype(jnp.float32)


def _as_image(x, name: str) -> jax.Array:
    a = jnp.asarray(x)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"{name} must be an (H, W, 3) RGB array, got shape {tuple(a.shape)}")
    if min(a.shape[:2]) < MIN_SIDE:
        raise ValueError(f"{name} is {a.shape[1]}x{a.shape[0]} px; VGG19 needs at least "
                         f"{MIN_SIDE} px per side")
    if not jnp.issubdtype(a.dtype, jnp.floating):
        raise ValueError(f"{name} must be float RGB in [0, 1], got dtype {a.dtype}")
    return a.astype(jnp.float32)


def _values(v) -> tuple:
    return v if isinstance(v, tuple) else (v,)


def make_options(**options) -> Options:
    """Options from keyword arguments, validated; unknown names and bad values raise ValueError."""
    names = {f.name for f in dataclasses.fields(Options)}
    for k in options:
        if k not in names:
            raise ValueError(f"unknown option {k!r}; expected one of {', '.join(sorted(names))}")
    for k in ("content_layers", "style_layers"):
        if k in options:
            options[k] = vgg.check_layers(options[k], what=k[:-1].replace("_", " "))
    for k in ("scales", "scale_iterations"):
        if options.get(k) is not None and not isinstance(options[k], tuple):
            try:
                options[k] = tuple(int(x) for x in options[k])
            except (TypeError, ValueError):
                raise ValueError(f"{k} must be a sequence of positive integers, got "
                                 f"{options[k]!r}") from None
    if options.get("style_blend_weights") is not None:
        v = options["style_blend_weights"]
        try:
            a = np.asarray(v, np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"style_blend_weights must be numbers, got {v!r}") from None
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"style_blend_weights must be a non-empty 1-D sequence, got {v!r}")
        options["style_blend_weights"] = tuple(a.tolist())
    for k in SWEEPABLE:
        v = options.get(k)
        if v is None or isinstance(v, (str, bytes)) or np.ndim(v) == 0:
            continue
        try:
            a = np.asarray(v, dtype=np.int64 if k == "seed" else np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{k} must be a number or a 1-D sequence of numbers, got {v!r}") \
                from None
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"{k} must be a number or a non-empty 1-D sequence, got {v!r}")
        options[k] = tuple(a.tolist())
    o = Options(**options)
    for k in ("iterations", "chunk", "lbfgs_memory"):
        v = getattr(o, k)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{k} must be a positive integer, got {v!r}")
    for k in ("content_weight", "style_weight", "tv_weight"):
        for v in _values(getattr(o, k)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or \
                    not math.isfinite(v) or v < 0:
                raise ValueError(f"{k} must be a finite number >= 0, got {v!r}")
    for v in _values(o.seed):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {v!r}")
    if isinstance(o.learning_rate, bool) or not isinstance(o.learning_rate, (int, float, np.number)) \
            or not (math.isfinite(o.learning_rate) and o.learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {o.learning_rate!r}")
    if o.style_blend_weights is not None:
        for v in o.style_blend_weights:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or \
                    not math.isfinite(v) or v < 0:
                raise ValueError(f"style_blend_weights must be finite numbers >= 0, got {v!r}")
        if sum(o.style_blend_weights) <= 0:
            raise ValueError("style_blend_weights must not all be zero")
    if o.style_scale is not None and (isinstance(o.style_scale, bool) or not isinstance(
            o.style_scale, (int, float, np.number)) or not 0 < o.style_scale < 1e3
                                      or not math.isfinite(o.style_scale)):
        raise ValueError(f"style_scale must be a number > 0, got {o.style_scale!r}")
    for k in ("scales", "scale_iterations"):
        v = getattr(o, k)
        if v is None:
            continue
        if not isinstance(v, tuple) or not v or any(
                isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1 for x in v):
            raise ValueError(f"{k} must be a sequence of positive integers, got {v!r}")
    if o.scale_iterations is not None and (o.scales is None or
                                           len(o.scale_iterations) != len(o.scales) + 1):
        raise ValueError("scale_iterations needs one value per scale plus one for the full size")
    if o.style_loss not in ("gram", "wasserstein"):
        raise ValueError(f"unknown style_loss {o.style_loss!r}; expected 'gram' or 'wasserstein'")
    if o.ema_decay is not None and (isinstance(o.ema_decay, bool) or not isinstance(
            o.ema_decay, (int, float, np.number)) or not 0 <= o.ema_decay < 1):
        raise ValueError(f"ema_decay must be a number in [0, 1), got {o.ema_decay!r}")
    if o.ema_decay is not None and o.optimizer != "adam":
        raise ValueError("ema_decay is for optimizer='adam' (L-BFGS iterates are not noisy)")
    if o.preserve_color not in ("none", "luminance", "histogram"):
        raise ValueError(f"unknown preserve_color {o.preserve_color!r}; expected 'none', "
                         "'luminance' or 'histogram'")
    if o.precision not in ("fp32", "bf16"):
        raise ValueError(f"unknown precision {o.precision!r}; expected 'fp32' or 'bf16'")
    if not isinstance(o.remat, (bool, np.bool_)):
        raise ValueError(f"remat must be True or False, got {o.remat!r}")
    for k in ("optimizer", "linesearch", "pooling", "style_loss", "preserve_color", "precision"):
        if not isinstance(getattr(o, k), str):
            raise ValueError(f"{k} must be a string, got {getattr(o, k)!r}")
    if o.optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"unknown optimizer {o.optimizer!r}; expected 'lbfgs' or 'adam'")
    if o.linesearch not in ("auto", "zoom", "backtracking"):
        raise ValueError(f"unknown linesearch {o.linesearch!r}; expected 'auto', 'zoom' or "
                         "'backtracking'")
    if o.pooling not in ("max", "avg"):
        raise ValueError(f"unknown pooling {o.pooling!r}; expected 'max' or 'avg'")
    if isinstance(o.init, str):
        if o.init not in ("content", "noise"):
            raise ValueError(f"init must be 'content', 'noise' or an image array, got {o.init!r}")
    elif not hasattr(o.init, "shape") or len(o.init.shape) != 3 or o.init.shape[-1] != 3:
        raise ValueError(f"init must be 'content', 'noise' or an (H, W, 3) image array, got "
                         f"{type(o.init).__name__}")
    if not o.content_layers and not o.style_layers:
        raise ValueError("content_layers and style_layers are both empty; nothing to optimise")
    return o


# --------------------------------------------------------------------------- public API

def _default_variables(variables):
    if variables is not None:
        return variables, "custom"
    from jaxnst import weights
    return weights.load_variables()


def features(image, layers: Sequence[str] | None = None, *, variables: dict | None = None,
             pooling: str = "max") -> dict[str, jax.Array]:
    """VGG19 post-ReLU activations of ``image``.

    image: (H, W, 3) or (N, H, W, 3) float RGB in [0, 1].
    layers: names like ``"conv4_2"``; default: every layer the weights hold.
    Returns ``{name: (H', W', C)}`` (or (N, H', W', C)); only layers up to the deepest requested are
    computed. ``variables`` defaults to the verified VGG19 weights (fetched on first use).
    """
    variables, _ = _default_variables(variables)
    if layers is None:
        layers = tuple(n for n in vgg.LAYERS if n in variables["params"])
    layers = vgg.check_layers(layers)
    missing = [n for n in layers if n not in variables["params"]]
    if missing:
        raise ValueError(f"layer {missing[0]!r} is not in these weights (they stop at "
                         f"{max(variables['params'], key=vgg.LAYERS.index)})")
    return _features(jnp.asarray(image, jnp.float32), variables, layers, pooling,
                     vgg.channels_of(variables))


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _features(image, variables, layers, pooling, channels):
    return vgg.VGG19(pooling=pooling, channels=channels).apply(variables, image, layers)


def layer_masks(masks: jax.Array, layers: Sequence[str]) -> dict[str, jax.Array]:
    """(R, H, W) guidance masks -> {layer: (R, H_l, W_l)}, average-pooled 2x2 like VGG19."""
    out, m, block = {}, jnp.asarray(masks, jnp.float32), 1
    for n in vgg.LAYERS:
        b = int(n[4])
        while block < b:
            r, h, w = m.shape
            m = m[:, : h // 2 * 2, : w // 2 * 2].reshape(r, h // 2, 2, w // 2, 2).mean((2, 4))
            block += 1
        if n in layers:
            out[n] = m
    return out


def prepare_targets(content, style, variables, options: Options,
                    blend: Sequence[float] | None = None, masks=None) -> losses.Targets:
    """Content activations and style Grams, computed once (outside any loop or vmap).

    ``style`` may be a list of images (any sizes); their Grams are averaged with ``blend``
    (normalised). Matching the blended Gram is the weighted sum of per-style losses up to a
    constant, as in jcjohnson/neural-style's blending."""
    channels = vgg.channels_of(variables)
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    w = np.ones(len(styles)) if blend is None else np.asarray(blend, np.float64)
    w = w / w.sum()
    cf = _features(content, variables, options.content_layers, options.pooling, channels) \
        if options.content_layers else {}
    grams, means, covs = {}, {}, {}
    for wi, st in zip(w, styles):
        if not options.style_layers:
            break
        sf = _features(st, variables, options.style_layers, options.pooling, channels)
        for n in options.style_layers:
            if options.style_loss == "gram":
                grams[n] = grams.get(n, 0.0) + float(wi) * losses.gram(sf[n])
            else:
                mu, cov = losses.mean_cov(sf[n])
                means[n] = means.get(n, 0.0) + float(wi) * mu
                covs[n] = covs.get(n, 0.0) + float(wi) * cov
    moments = {n: (means[n], covs[n], losses._psd_sqrt(covs[n])) for n in means}
    lmasks = {}
    if masks is not None and options.style_layers:
        # Spatial control: region r takes style r's Gram; blending does not apply.
        grams = {n: jnp.stack([losses.gram(_features(st, variables, (n,), options.pooling,
                                                     channels)[n]) for st in styles])
                 for n in options.style_layers}
        lmasks = layer_masks(masks, options.style_layers)
    return losses.Targets(content={n: cf[n] for n in options.content_layers}, grams=grams,
                          moments=moments, masks=lmasks)


def _rescale(image: jax.Array, long_side: float) -> jax.Array:
    h, w = image.shape[:2]
    s = max(long_side / max(h, w), MIN_SIDE / min(h, w))
    shape = (max(1, round(h * s)), max(1, round(w * s)), 3)
    return jnp.clip(jax.image.resize(image, shape, "lanczos3"), 0.0, 1.0)


def initial_images(content: jax.Array, seeds: np.ndarray, options: Options) -> jax.Array:
    """(N, H, W, 3) starting images for (N, H, W, 3) contents and (N,) seeds."""
    if isinstance(options.init, str):
        if options.init == "content":
            return content
        keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))
        return jax.vmap(lambda k: jax.random.uniform(k, content.shape[1:], jnp.float32))(keys)
    init = _as_image(options.init, "init")
    if init.shape != content.shape[1:]:
        raise ValueError(f"init image has shape {tuple(init.shape)}, expected the content's "
                         f"{tuple(content.shape[1:])}")
    return jnp.broadcast_to(init, content.shape)


def sweep_grid(o: Options) -> tuple[tuple[str, ...], np.ndarray]:
    """The swept options (those given as sequences), in SWEEPABLE order, and the (N, k) grid of
    their values: the cartesian product with the last option varying fastest."""
    names = tuple(n for n in SWEEPABLE if isinstance(getattr(o, n), tuple))
    if not names:
        return (), np.zeros((1, 0))
    grid = np.array(list(itertools.product(*(getattr(o, n) for n in names))), np.float64)
    return names, grid.reshape(-1, len(names))


def _member_values(o: Options, names, grid) -> dict[str, np.ndarray]:
    n = grid.shape[0]
    out = {}
    for k in SWEEPABLE:
        out[k] = grid[:, names.index(k)] if k in names else np.full(n, getattr(o, k), np.float64)
    return out


def process_share(n: int) -> np.ndarray:
    """Indices of the members this process runs: a contiguous block of ceil(n / processes),
    the last block padded by repeating the last member so every process runs the same shapes."""
    procs, me = jax.process_count(), jax.process_index()
    share = -(-n // procs)
    idx = np.minimum(np.arange(share * procs), n - 1)
    return idx[me * share:(me + 1) * share]


def gather_members(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """All processes' per-member arrays, concatenated in member order (first n)."""
    from jax.experimental import multihost_utils
    out = multihost_utils.process_allgather(arrays, tiled=True)
    return {k: np.asarray(v)[:n] for k, v in out.items()}


def _sharding(n: int):
    """A 1-D mesh over the local devices for a batch of n (None on one device)."""
    d = min(jax.local_device_count(), n)
    if d <= 1:
        return None, 1
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()[:d]), ("batch",))
    return mesh, d


def stylize(content, style, *, variables: dict | None = None,
            callback: Callable[[int, float, jax.Array], bool | None] | None = None,
            checkpoint_every: int | None = None,
            on_checkpoint: Callable[[Any], None] | None = None,
            resume: Any = None, content_masks=None, **options) -> Result:
    """Gatys et al. style transfer of ``style`` onto ``content``.

    content: (H, W, 3) float RGB in [0, 1], or (C, H, W, 3) for several content images of one size.
    style: (H, W, 3); its size may differ. ``options``: see :class:`Options`. ``variables``: VGG19
    Flax variables (default: the verified weights).

    Sweeps: ``content_weight``, ``style_weight``, ``tv_weight`` and ``seed`` also accept a sequence
    or 1-D array. All combinations (cartesian product, in that order of options, the last varying
    fastest; several content images vary slowest) run as one batch in ONE compiled program via
    ``jax.vmap``; style Grams and content targets are computed once, outside it. With several local
    devices the batch axis is sharded across them (padded to a multiple of the device count). A
    batched result has a leading batch axis on ``image``, ``losses`` and the history's parts, and
    ``sweep`` gives each member's option values.

    ``callback(step, loss, image)`` runs after every chunk (the image is the batch for a sweep);
    returning True stops early.

    Spatial control: ``content_masks`` (R, H, W) in [0, 1], one mask per style image, assigns
    region r of the content to style r through guided Gram matrices (Gatys et al. 2017).

    Checkpoints (:mod:`jaxnst.checkpoint`): ``on_checkpoint(ckpt)`` receives a
    :class:`~jaxnst.checkpoint.Checkpoint` at chunk ends where the step is a multiple of
    ``checkpoint_every``, and on Ctrl-C (then KeyboardInterrupt is re-raised). ``resume`` (a
    Checkpoint or a file path) continues such a run; the result equals the uninterrupted run's.
    It is refused (CheckpointError) when the inputs or options differ, except ``iterations``.
    """
    o = make_options(**options)
    if o.scales:
        return _multiscale(content, style, o, variables=variables, callback=callback,
                           content_masks=content_masks)
    t_start = time.perf_counter()
    c0, h0 = compile_stats()["seconds"], compile_stats()["cache_hits"]
    content = jnp.asarray(content)
    many_contents = content.ndim == 4
    contents = _as_images(content, "content") if many_contents else _as_image(content, "content")[None]
    styles = [_as_image(x, f"style {i + 1}") for i, x in enumerate(style)] \
        if isinstance(style, (list, tuple)) else [_as_image(style, "style")]
    if o.style_blend_weights is not None and len(o.style_blend_weights) != len(styles):
        raise ValueError(f"style_blend_weights has {len(o.style_blend_weights)} values for "
                         f"{len(styles)} style images")
    if o.style_scale is not None:
        side = o.style_scale * max(contents.shape[1:3])
        styles = [_rescale(x, side) for x in styles]
    original_contents = contents
    if o.preserve_color == "histogram":
        styles = [color.match_color_histogram(x, contents[0]) for x in styles]
    elif o.preserve_color == "luminance":
        c_luma = color.luma(contents)
        styles = [color.grey(color.match_luminance(color.luma(x), c_luma[0])) for x in styles]
        contents = color.grey(c_luma)
    variables, digest = _default_variables(variables)
    layers = tuple(n for n in vgg.LAYERS if n in set(o.content_layers) | set(o.style_layers))
    for n in layers:
        if n not in variables["params"]:
            raise ValueError(f"layer {n!r} is not in these weights")
    names, grid = sweep_grid(o)
    n_c, n_g = contents.shape[0], grid.shape[0]
    n = n_c * n_g
    batched = many_contents or bool(names)
    values = {k: np.repeat(v[None], n_c, 0).reshape(-1) for k, v in
              _member_values(o, names, grid).items()}
    content_index = np.repeat(np.arange(n_c), n_g)

    run_vars = vgg.with_backward_kernels(variables)
    if content_masks is not None:
        content_masks = jnp.asarray(content_masks, jnp.float32)
        if content_masks.ndim == 2:
            content_masks = content_masks[None]
        if content_masks.ndim != 3 or content_masks.shape[1:] != contents.shape[1:3]:
            raise ValueError(f"content_masks must be (R, H, W) with the content's H, W "
                             f"{tuple(contents.shape[1:3])}, got {tuple(content_masks.shape)}")
        if content_masks.shape[0] != len(styles):
            raise ValueError(f"content_masks has {content_masks.shape[0]} regions for "
                             f"{len(styles)} style images (one style per region)")
        if o.style_loss != "gram":
            raise ValueError("content_masks work with style_loss='gram' (guided Gram matrices)")
    targets = prepare_targets(contents, styles, variables, o, o.style_blend_weights,
                              masks=content_masks)
    # (content feats: (C, ...), one per content image)
    mine = process_share(n)  # this process's members (all of them in a one-process run)
    m = len(mine)
    mesh, n_dev = _sharding(m)
    idx = np.concatenate([mine, np.full((-m) % n_dev, mine[-1])]).astype(np.int32)
    targets = targets._replace(content={k: v[content_index[idx]] for k, v in targets.content.items()})
    hyper = optimize.Hyper(
        weights=losses.Weights(*(jnp.asarray(values[k][idx], jnp.float32)
                                 for k in ("content_weight", "style_weight", "tv_weight"))),
        learning_rate=jnp.float32(o.learning_rate), iterations=jnp.int32(o.iterations),
        ema_decay=jnp.float32(o.ema_decay or 0.0))
    config = optimize.Config(optimizer=o.optimizer, chunk=min(o.chunk, o.iterations),
                             pooling=o.pooling, layers=layers, channels=vgg.channels_of(variables),
                             lbfgs_memory=o.lbfgs_memory, batched_content=True,
                             precision=o.precision, remat=bool(o.remat),
                             linesearch=o.linesearch if o.linesearch != "auto" else
                             ("zoom" if n == 1 else "backtracking"))
    # (n == 1, not m: every process of a multi-process run must trace the same program.)
    images0 = initial_images(contents[content_index[idx]], values["seed"][idx].astype(np.int64), o)
    if mesh is not None:
        from jax.sharding import NamedSharding, PartitionSpec as P
        row, rep = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
        images0 = jax.device_put(images0, row)
        hyper = hyper._replace(weights=jax.device_put(hyper.weights, row))
        targets = losses.Targets(jax.device_put(targets.content, row),
                                 jax.device_put(targets.grams, rep),
                                 jax.device_put(targets.moments, rep),
                                 jax.device_put(targets.masks, rep))
        run_vars = jax.device_put(run_vars, rep)

    fp = None
    if checkpoint_every or on_checkpoint or resume is not None:
        if jax.process_count() > 1:
            raise ValueError("checkpoints are not supported in multi-process runs")
        from jaxnst import checkpoint as ckpt_mod
        fp = ckpt_mod.fingerprint(np.asarray(contents),
                                  np.concatenate([np.asarray(x).ravel() for x in styles] + (
                                      [np.asarray(content_masks).ravel()]
                                      if content_masks is not None else [])), o, digest)
    start = None
    if resume is not None:
        if isinstance(resume, (str, os.PathLike)):
            resume = ckpt_mod.load(resume)
        if resume.fingerprint != fp:
            raise ckpt_mod.CheckpointError(
                "checkpoint does not match these inputs and options (content, style, weights or "
                "an option other than iterations differs); start without --resume")
        template = jax.eval_shape(functools.partial(optimize.init_state, config=config), images0,
                                  run_vars, targets, hyper)[0]
        state = ckpt_mod.restore(template, resume.leaves)
        if mesh is not None:
            state = jax.device_put(state, row)
        parts_hist = [losses.Parts(*(jnp.asarray(resume.parts[f][i]) for f in losses.Parts._fields))
                      for i in range(resume.parts["total"].shape[0])]
        start = optimize.Progress(state, [jnp.asarray(t) for t in resume.totals], parts_hist,
                                  resume.paid)

    def snapshot(progress: optimize.Progress):
        st = jax.device_get(progress.state)
        return ckpt_mod.Checkpoint(
            fp, int(np.max(st.step)), [np.asarray(a) for a in jax.tree.leaves(st)],
            np.stack([np.asarray(t) for t in progress.totals]) if progress.totals else
            np.zeros((0, config.chunk, len(idx)), np.float32),
            {f: np.stack([np.asarray(getattr(p, f)) for p in progress.parts])
             for f in losses.Parts._fields}, progress.paid)

    def on_chunk(progress: optimize.Progress):
        state, parts = progress.state, progress.parts[-1]
        step = int(np.max(state.step))
        if on_checkpoint is not None and checkpoint_every and step % checkpoint_every == 0 \
                and step < o.iterations:
            on_checkpoint(snapshot(progress))
        if callback is None:
            return None
        loss = float(np.mean(np.asarray(parts.total)[:m]))
        return callback(step, loss, state.image[:m] if batched else state.image[0])

    try:
        state, totals, parts, paid = optimize.descend(images0, run_vars, targets, hyper, config,
                                                      on_chunk, start=start)
    except optimize.Interrupted as e:
        if on_checkpoint is not None:
            on_checkpoint(snapshot(e.progress))
        raise KeyboardInterrupt from None
    per_member = {
        "steps": np.asarray(state.step)[:m],
        "totals": np.concatenate([np.asarray(t) for t in totals], 0)[: o.iterations, :m].T,
        "diverged": np.asarray(state.diverged_at)[:m],
        "image": np.where((np.asarray(state.diverged_at)[:m] >= 0)[:, None, None, None],
                          np.asarray(state.good_image)[:m],
                          np.asarray(jax.vmap(optimize.ema_image, (0, None))(
                              state, hyper.ema_decay))[:m]),
        "evals": np.asarray(state.evals)[:m],
        **{f: np.stack([np.asarray(getattr(p, f))[:m] for p in parts], 1).astype(np.float32)
           for f in losses.Parts._fields},
    }
    if jax.process_count() > 1:
        per_member = gather_members(per_member, n)
        paid = int(np.max(gather_members({"paid": np.full(m, paid)}, n)["paid"]))
    steps_done, totals, diverged = per_member["steps"], per_member["totals"], per_member["diverged"]
    steps = [0] + [min((i + 1) * config.chunk, int(steps_done.max())) for i in range(len(parts) - 1)]
    history = {"step": np.asarray(steps), **{f: per_member[f] for f in losses.Parts._fields}}
    image = np.clip(per_member["image"], 0.0, 1.0)
    if o.preserve_color == "luminance":
        image = np.asarray(color.combine_luma_chroma(
            jnp.asarray(image), original_contents[content_index[:image.shape[0]]]))
    evals = per_member["evals"]
    wall = time.perf_counter() - t_start
    compile_s = compile_stats()["seconds"] - c0
    common = dict(compile_seconds=compile_s, run_seconds=max(wall - compile_s, 0.0),
                  compile_cache_hits=compile_stats()["cache_hits"] - h0,
                  device=str(jax.devices()[0].device_kind), weights_digest=digest, options=o,
                  batch_evaluations=paid, devices=n_dev * jax.process_count())
    if batched:
        sweep = {k: values[k] for k in names}
        if many_contents:
            sweep["content_index"] = content_index
        return Result(image=image, losses=totals, history=history, evaluations=evals,
                      iterations=steps_done, diverged_at=[None if d < 0 else int(d) for d in diverged],
                      sweep=sweep, **common)
    return Result(image=image[0], losses=totals[0], history={k: (v if k == "step" else v[0])
                                                             for k, v in history.items()},
                  evaluations=int(evals[0]), iterations=int(steps_done[0]),
                  diverged_at=None if diverged[0] < 0 else int(diverged[0]), sweep=None, **common)


def synthesize_texture(style, shape: tuple[int, int], **options) -> Result:
    """Texture synthesis (Gatys, Ecker & Bethge 2015): match only the style's Grams, from white
    noise. ``shape`` = (H, W) of the output; ``options`` as for :func:`stylize`."""
    options = {"init": "noise", **options, "content_layers": ()}
    return stylize(np.zeros((*shape, 3), np.float32), style, **options)


def reconstruct_content(content, layer: str = "conv4_2", **options) -> Result:
    """Content reconstruction from white noise: match only ``layer``'s activations (the paper's
    Figure 1 shows how much each layer keeps)."""
    options = {"init": "noise", **options, "style_layers": (), "content_layers": (layer,)}
    return stylize(content, content, **options)


def _multiscale(content, style, o: Options, **kw) -> Result:
    """Coarse-to-fine (Gatys et al. 2017): optimise at each of ``o.scales`` (longer side), then at
    the content's size, each stage starting from the previous result upsampled (Lanczos). The
    style keeps its size relative to the content (``style_scale``, default 1: same longer side).
    Optimizer state is not carried across sizes: L-BFGS's curvature pairs and Adam's moments
    belong to one resolution; the upsampled image is the warm start."""
    content = jnp.asarray(content, jnp.float32)
    if content.ndim != 3:
        raise ValueError("scales work with one content image")
    if sweep_grid(o)[0]:
        raise ValueError("scales do not combine with sweeps (several weights or seeds) yet; "
                         "run one value at a time")
    h, w = content.shape[:2]
    full = max(h, w)
    sizes = [s for s in o.scales if s < full] + [full]
    its = list(o.scale_iterations) if o.scale_iterations else [o.iterations] * (len(o.scales) + 1)
    its = its[-len(sizes):]
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    scale = o.style_scale if o.style_scale is not None else 1.0
    base = dataclasses.asdict(o) | {"scales": None, "scale_iterations": None}
    image, results, masks = None, [], kw.pop("content_masks")
    for size, n in zip(sizes, its):
        c = content if size == full else _rescale(content, size)
        shape = c.shape
        if image is not None:
            init = jnp.clip(jax.image.resize(image, shape, "lanczos3"), 0.0, 1.0)
        elif isinstance(base["init"], str):
            init = base["init"]
        else:
            init = jnp.clip(jax.image.resize(jnp.asarray(base["init"], jnp.float32), shape,
                                             "lanczos3"), 0.0, 1.0)
        st = [_rescale(jnp.asarray(x, jnp.float32), scale * size) for x in styles]
        m = None if masks is None else jax.image.resize(jnp.asarray(masks, jnp.float32),
                                                        (len(masks),) + shape[:2], "linear")
        opts = base | {"iterations": n, "init": init, "style_scale": None}
        r = stylize(c, st if len(st) > 1 else st[0], content_masks=m, **kw, **opts)
        if r.diverged_at is not None:
            return r
        image = jnp.asarray(r.image)
        results.append(r)
    last = results[-1]
    return dataclasses.replace(
        last, evaluations=sum(r.evaluations for r in results),
        iterations=sum(r.iterations for r in results),
        compile_seconds=sum(r.compile_seconds for r in results),
        compile_cache_hits=sum(r.compile_cache_hits for r in results),
        run_seconds=sum(r.run_seconds for r in results),
        batch_evaluations=sum(r.batch_evaluations for r in results), options=o)
