"""``stylize()``: arrays in, arrays out. The :class:`Options` dataclass is the one home of every
default; the CLI derives its flags from it."""
from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst import losses, optimize, vgg

CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
MIN_SIDE = 16  # four 2x2 poolings before conv5_1 need at least 16 px per side


def _field(default, help: str, **kw):
    return dataclasses.field(default=default, metadata={"help": help, **kw})


@dataclasses.dataclass(frozen=True)
class Options:
    """Every option of :func:`stylize`, with its default.

    Default weights (content 1, style 1e4, tv 1e1 with our normalisation, see :mod:`jaxnst.losses`)
    were chosen by sweeping style weight 1e2..1e5 on tubingen with starry_night and the_scream at
    256 and 512 px, 500 L-BFGS iterations from the content image: at 1e4 the style's strokes and
    palette cover the whole picture while the buildings and the river stay recognisable; 1e3 is
    visibly under-stylized at 512 px and 1e5 dissolves the buildings. The small TV weight removes the
    high-frequency speckle L-BFGS otherwise leaves without blurring the strokes.
    """
    iterations: int = _field(500, "descent steps (L-BFGS iterations or Adam steps)")
    optimizer: str = _field("lbfgs", "lbfgs (paper, default) or adam", choices=("lbfgs", "adam"))
    learning_rate: float = _field(0.02, "Adam step size, in pixel units of [0, 1] (L-BFGS uses a "
                                        "line search and ignores it)")
    content_weight: float = _field(1.0, "weight of the content loss (alpha)")
    style_weight: float = _field(1e-4, "weight of the style loss (beta)")
    tv_weight: float = _field(1e4, "weight of the total-variation smoothness loss")
    init: str = _field("content", "starting image: content, noise (seeded), or an image file (CLI) "
                                  "/ array (API)")
    seed: int = _field(0, "random seed for noise init")
    pooling: str = _field("max", "max (as VGG19 was trained) or avg (the paper's choice)",
                          choices=("max", "avg"))
    content_layers: tuple[str, ...] = _field(CONTENT_LAYERS, "VGG19 layers for content")
    style_layers: tuple[str, ...] = _field(STYLE_LAYERS, "VGG19 layers for style")
    chunk: int = _field(20, "steps per compiled program call; progress is reported between chunks")
    lbfgs_memory: int = _field(10, "L-BFGS history size")


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
    diverged_at: int | None = None
    options: Options | None = None


# --------------------------------------------------------------------------- compile-time accounting

_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_compile_lock = threading.Lock()
_compile_totals = {"seconds": 0.0, "compiles": 0}


def _on_event(event: str, duration: float, **_: Any) -> None:
    if event in _COMPILE_EVENTS:
        with _compile_lock:
            _compile_totals["seconds"] += duration
            if event == _COMPILE_EVENTS[-1]:
                _compile_totals["compiles"] += 1


jax.monitoring.register_event_duration_secs_listener(_on_event)


def compile_stats() -> dict[str, float]:
    """Process-wide totals: seconds spent compiling, number of XLA compilations."""
    with _compile_lock:
        return dict(_compile_totals)


# --------------------------------------------------------------------------- validation

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


def make_options(**options) -> Options:
    """Options from keyword arguments, validated; unknown names and bad values raise ValueError."""
    names = {f.name for f in dataclasses.fields(Options)}
    for k in options:
        if k not in names:
            raise ValueError(f"unknown option {k!r}; expected one of {', '.join(sorted(names))}")
    for k in ("content_layers", "style_layers"):
        if k in options:
            options[k] = vgg.check_layers(options[k], what=k[:-1].replace("_", " "))
    o = Options(**options)
    if not isinstance(o.iterations, (int, np.integer)) or o.iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {o.iterations!r}")
    if not isinstance(o.chunk, (int, np.integer)) or o.chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {o.chunk!r}")
    for k in ("content_weight", "style_weight", "tv_weight"):
        v = getattr(o, k)
        if not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{k} must be a finite number >= 0, got {v!r}")
    if not isinstance(o.learning_rate, (int, float, np.number)) or not (
            math.isfinite(o.learning_rate) and o.learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {o.learning_rate!r}")
    if o.optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"unknown optimizer {o.optimizer!r}; expected 'lbfgs' or 'adam'")
    if o.pooling not in ("max", "avg"):
        raise ValueError(f"unknown pooling {o.pooling!r}; expected 'max' or 'avg'")
    if isinstance(o.init, str) and o.init not in ("content", "noise"):
        raise ValueError(f"init must be 'content', 'noise' or an image array, got {o.init!r}")
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


def prepare_targets(content, style, variables, options: Options) -> losses.Targets:
    """Content activations and style Grams, computed once (outside any loop or vmap)."""
    channels = vgg.channels_of(variables)
    cf = _features(content, variables, options.content_layers, options.pooling, channels) \
        if options.content_layers else {}
    sf = _features(style, variables, options.style_layers, options.pooling, channels) \
        if options.style_layers else {}
    return losses.make_targets(cf, sf, options.content_layers, options.style_layers)


def initial_image(content: jax.Array, options: Options) -> jax.Array:
    if isinstance(options.init, str):
        if options.init == "content":
            return content
        return jax.random.uniform(jax.random.PRNGKey(options.seed), content.shape, jnp.float32)
    init = _as_image(options.init, "init")
    if init.shape != content.shape:
        raise ValueError(f"init image has shape {tuple(init.shape)}, expected the content's "
                         f"{tuple(content.shape)}")
    return init


def stylize(content, style, *, variables: dict | None = None,
            callback: Callable[[int, float, jax.Array], bool | None] | None = None,
            **options) -> Result:
    """Gatys et al. style transfer of ``style`` onto ``content``.

    content, style: (H, W, 3) float RGB in [0, 1]; sizes may differ. ``options``: see
    :class:`Options`. ``variables``: VGG19 Flax variables (default: the verified weights).
    ``callback(step, loss, image)`` is called after every chunk with the current (unclipped) image;
    returning True stops early.
    """
    t_start = time.perf_counter()
    c0 = compile_stats()["seconds"]
    o = make_options(**options)
    content = _as_image(content, "content")
    style = _as_image(style, "style")
    variables, digest = _default_variables(variables)
    layers = tuple(n for n in vgg.LAYERS if n in set(o.content_layers) | set(o.style_layers))
    for n in layers:
        if n not in variables["params"]:
            raise ValueError(f"layer {n!r} is not in these weights")
    run_vars = vgg.with_backward_kernels(variables)
    targets = prepare_targets(content, style, variables, o)
    hyper = optimize.Hyper(
        weights=losses.Weights(jnp.float32(o.content_weight), jnp.float32(o.style_weight),
                               jnp.float32(o.tv_weight)),
        learning_rate=jnp.float32(o.learning_rate), iterations=jnp.int32(o.iterations))
    config = optimize.Config(optimizer=o.optimizer, chunk=min(o.chunk, o.iterations),
                             pooling=o.pooling, layers=layers, channels=vgg.channels_of(variables),
                             lbfgs_memory=o.lbfgs_memory)
    image0 = initial_image(content, o)

    def on_chunk(state, totals, parts):
        if callback is None:
            return None
        return callback(int(state.step), float(parts.total), state.image)

    state, totals, parts = optimize.descend(image0, run_vars, targets, hyper, config, on_chunk)
    totals = np.concatenate([np.asarray(t) for t in totals])[: o.iterations]
    steps = [0] + [min((i + 1) * config.chunk, int(state.step)) for i in range(len(parts) - 1)]
    history = {"step": np.asarray(steps)}
    for f in losses.Parts._fields:
        history[f] = np.asarray([float(getattr(p, f)) for p in parts], np.float32)
    diverged = int(state.diverged_at)
    image = np.clip(np.asarray(state.good_image if diverged >= 0 else state.image), 0.0, 1.0)
    wall = time.perf_counter() - t_start
    compile_s = compile_stats()["seconds"] - c0
    return Result(image=image, losses=totals, history=history, evaluations=int(state.evals),
                  iterations=int(state.step), compile_seconds=compile_s,
                  run_seconds=max(wall - compile_s, 0.0), device=str(jax.devices()[0].device_kind),
                  weights_digest=digest, diverged_at=None if diverged < 0 else diverged, options=o)
