"""The compiled programs of training: a chunk of optimisation steps (network forward, VGG19 forward
and backward, optax Adam) as one XLA program, and the held-out loss.

The objective is the still image's (:func:`jaxnst.loss.losses.objective`: content activations of
the photo itself at the content layers, the style's Gram matrices, total variation), evaluated on
the network's output, one sample at a time under ``jax.vmap``. A sample drawn at strength ``s``
(a multiple of the style weight) weighs its style term ``s`` times; its loss is divided by
``(1 + s) / 2`` so that samples of high strength do not drown those of low strength in the
shared layers' gradients (with one strength, 1, the factor is 1 and the loss is exactly the still
image's).
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnst.feedforward.network import NetConfig, TransformNet, conditioning
from jaxnst.loss import color, losses
from jaxnst.model import vgg
from jaxnst.optim.programs import _program


class TrainConfig(NamedTuple):
    """A training program's static part (a change compiles anew)."""

    net: NetConfig
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    pooling: str = "max"
    vgg_channels: tuple[int, ...] = (64, 128, 256, 512, 512)
    luminance: bool = False  # preserve_color="luminance": the network sees and makes grey images
    precision: str = "fp32"  # the VGG19's ("bf16": convolutions and activations in bfloat16)
    stepwise: bool = False  # one program call per step, the host looping (CPUs: see run_chunk)
    average: float = 0.0  # the parameters' exponential moving average's decay per step (0: none)
    xla_cpu_ynn: bool = False  # (read by _program)
    optimizer: str = "adam"  # :data:`OPTIMIZERS` (see :func:`optimizer`)


class TrainState(NamedTuple):
    """Everything a step changes: the network's parameters, Adam's moments, the step count, the
    key every step's draws are folded from (so step t draws the same wherever it runs) and the
    parameters' moving average, not yet debiased (zeros at step 0; see :func:`averaged`)."""

    params: Any
    opt_state: Any
    step: jax.Array  # int32 scalar
    key: jax.Array  # uint32 (2,), raw threefry key data
    average: Any = None


# Adam's second-moment decay: 0.99, not 0.999, which the screen preferred (see train.SCHEDULE).
ADAM_B2 = 0.99
OPTIMIZERS = ("adam", "muon")
# Muon's update RMS (optax's consistent_rms): each orthogonalised update scaled to this root mean
# square per entry, so one step size serves Muon's kernels and Adam's other parameters (Liu et
# al. 2025 match AdamW at 0.2; the screen in train.OPTIMIZER preferred 0.5).
MUON_RMS = 0.5
_EDGES = ("c1", "out")  # the first and last convolutions: Adam's, as Muon's authors advise


def _muon_dims(params: Any) -> Any:
    """Muon's matrices: each inner convolution's kernel (kh, kw, in, out) read as a (kh kw in,
    out) matrix; everything else (the 9x9 edges, norms' scales and shifts, the bias): Adam."""
    from optax import contrib

    def dims(layer: str, name: str) -> Any:
        if name != "kernel" or layer in _EDGES:
            return None
        return contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3)

    return {k: {n: dims(k, n) for n in v} for k, v in params.items()}


def optimizer(name: str) -> optax.GradientTransformation:
    """The update direction (the step size applied after, as ``-lr * u``): ``"adam"``, optax's
    Adam with b2 = :data:`ADAM_B2`; ``"muon"``, Muon (Jordan et al. 2024: momentum orthogonalised
    by Newton-Schulz iterations) for the inner convolutions' kernels, Adam with Nesterov momentum
    (optax's ``contrib.muon``, b2 = :data:`ADAM_B2`) for the rest."""
    if name == "adam":
        return optax.scale_by_adam(b2=ADAM_B2)  # optax.adam(lr, b2=ADAM_B2) = this, then * -lr
    if name == "muon":
        from optax import contrib

        # A step size of -1 makes optax's own scaling the identity (it multiplies by -lr).
        return contrib.muon(
            -1.0, adam_learning_rate=-1.0, adam_b2=ADAM_B2, consistent_rms=MUON_RMS,
            muon_weight_dimension_numbers=_muon_dims,
        )  # fmt: skip
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def init_state(params: Any, seed: int, name: str = "adam") -> TrainState:
    zeros = jax.tree.map(jnp.zeros_like, params)
    opt = optimizer(name).init(params)
    return TrainState(params, opt, jnp.zeros((), jnp.int32), jax.random.PRNGKey(seed), zeros)


SCHEDULES = ("constant", "linear")


def rates(lr: float, schedule: str, first: int, count: int, total: int, spent: float = 0.0):
    """Adam's step sizes for steps ``first`` .. ``first + count - 1`` of a run of ``total`` steps,
    (count,) float32. ``"linear"`` decays from ``lr`` toward 0 at the run's end (linear decay
    to zero is the best simple schedule for a fixed budget: Li, Yumer & Ramanan, ICLR 2020);
    the run's end is its last step or, with a time budget, the moment ``spent`` (the share of
    it used so far) reaches 1, whichever comes first. ``"constant"``: ``lr`` throughout
    (as Johnson's step size; his Adam's b2 was 0.999). A pure function of the step (and the
    time spent), so a run resumed with the same ``total`` takes the same steps."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    k = np.arange(first, first + count, dtype=np.float64)
    if schedule == "constant":
        return np.full(count, lr, np.float32)
    done = np.maximum(k / max(int(total), 1), float(spent))
    return (lr * np.clip(1.0 - done, 0.0, 1.0)).astype(np.float32)


def averaged(state: TrainState, decay: float) -> Any:
    """The parameters a model is made of: with ``decay`` > 0, the moving average of the
    parameters after each step, debiased (Adam's correction: ``average / (1 - decay**t)``, so
    the initial parameters weigh nothing); else (or before any step) the last step's. On the
    host, NumPy."""
    host = jax.device_get(state)
    t = int(host.step)
    if decay <= 0 or t == 0:
        return host.params
    return jax.tree.map(lambda a: np.asarray(a / (1.0 - decay**t), np.float32), host.average)


def grey(images: jax.Array) -> jax.Array:
    """RGB -> grey RGB of the luma (BT.601), for luminance-only networks."""
    return color.grey(color.luma(images))


def _vgg(images: jax.Array, variables: dict, layers: tuple[str, ...], cfg: TrainConfig) -> dict:
    net = vgg.VGG19(pooling=cfg.pooling, channels=cfg.vgg_channels, precision=cfg.precision)
    return cast(dict, net.apply(variables, images, layers))


def draws(key: jax.Array, step: jax.Array, batch: int, cfg: TrainConfig) -> tuple:
    """Step ``step``'s style index (B,) and log strength (B,) per sample."""
    k1, k2 = jax.random.split(jax.random.fold_in(key, step))
    style = jax.random.randint(k1, (batch,), 0, cfg.net.styles)
    lo, hi = (float(np.log(s)) for s in cfg.net.strengths)
    return style, jax.random.uniform(k2, (batch,), jnp.float32, lo, hi)


def sample_losses(
    params: Any,
    images: jax.Array,
    style: jax.Array,
    log_strength: jax.Array,
    variables: dict,
    grams: dict,
    weights: losses.Weights,
    cfg: TrainConfig,
) -> losses.Parts:
    """The still image's objective of each sample's output, (B,) parts. ``images`` (B, H, W, 3);
    ``grams`` {layer: (S, C, C)}; the style weight is ``weights.style * exp(log_strength)``."""
    if cfg.luminance:
        images = grey(images)
    cond = conditioning(style, log_strength, cfg.net)
    out = cast(jax.Array, TransformNet(cfg.net).apply({"params": params}, images, cond))
    if cfg.luminance:
        out = grey(out)
    layers = tuple(n for n in vgg.LAYERS if n in set(cfg.content_layers) | set(cfg.style_layers))
    fc = jax.lax.stop_gradient(_vgg(images, variables, cfg.content_layers, cfg))
    fy = _vgg(out, variables, layers, cfg)

    def one(y, f, content, g, sw):
        t = losses.Targets(content=content, grams=g)
        return losses.objective(y, f, t, losses.Weights(weights.content, sw, weights.tv))

    return jax.vmap(one)(
        out,
        fy,
        {n: fc[n] for n in cfg.content_layers},
        {n: grams[n][style] for n in cfg.style_layers},
        weights.style * jnp.exp(log_strength),
    )


def batch_loss(params, images, style, log_strength, variables, grams, weights, cfg):
    """The mean over the batch of each sample's total divided by ``(1 + s) / 2``; and the parts."""
    parts = sample_losses(params, images, style, log_strength, variables, grams, weights, cfg)
    scale = 2.0 / (1.0 + jnp.exp(log_strength))
    return jnp.mean(parts.total * scale), parts


def step(state: TrainState, images, variables, grams, weights, lr, cfg) -> tuple:
    """One step: (new state, the batch's loss before it)."""
    style, log_s = draws(state.key, state.step, images.shape[0], cfg)
    (loss, _), g = jax.value_and_grad(batch_loss, has_aux=True)(
        state.params, images, style, log_s, variables, grams, weights, cfg
    )
    updates, opt_state = optimizer(cfg.optimizer).update(g, state.opt_state, state.params)
    params = optax.apply_updates(state.params, jax.tree.map(lambda u: -lr * u, updates))
    average = state.average
    if cfg.average > 0:
        d = cfg.average
        average = jax.tree.map(lambda a, p: d * a + (1.0 - d) * p, average, params)
    return TrainState(params, opt_state, state.step + 1, state.key, average), loss


@_program
def train_chunk(state, batches, count, variables, grams, weights, lr, config: TrainConfig):
    """``count`` (<= len(batches)) steps on ``batches`` (N, B, H, W, 3), one per step, in one
    program (any count, one compilation); ``lr`` (N,) each step's step size. Returns (state,
    losses (N,): each step's batch loss, NaN after ``count``)."""

    def body(i, carry):
        st, hist = carry
        st, loss = step(st, batches[i], variables, grams, weights, lr[i], config)
        return st, hist.at[i].set(loss)

    hist = jnp.full((batches.shape[0],), jnp.nan, jnp.float32)
    return jax.lax.fori_loop(0, count, body, (state, hist))


@_program
def train_step(state, images, variables, grams, weights, lr, config: TrainConfig):
    """One step on ``images`` (B, H, W, 3) as its own program: (state, the batch's loss)."""
    return step(state, images, variables, grams, weights, lr, config)


def run_chunk(state, batches, count, variables, grams, weights, lr, config: TrainConfig):
    """``count`` steps on ``batches`` (N, B, H, W, 3) with step sizes ``lr`` (N,) (a scalar: the
    same for each): :func:`train_chunk`, or with
    ``config.stepwise`` ``count`` calls of :func:`train_step` (the same steps, the same draws).
    Returns (state, losses (N,), NaN after ``count``).

    Stepwise is the CPU's default: XLA:CPU runs the network's convolution gradients several times
    slower inside a while loop than in a program of their own (a 128 px batch-4 step: 2.18 s per
    step as a 3-step loop with the convolutions as dots, 14.5 s with XLA's convolutions, 1.49 s
    as one step with XLA's convolutions; AMD EPYC Zen 4, 2 cores). A step takes ~1 s there, so
    calling once per step costs nothing measurable."""
    lr = np.broadcast_to(np.asarray(lr, np.float32), (batches.shape[0],))
    if not config.stepwise:
        return train_chunk(state, batches, count, variables, grams, weights, lr, config=config)
    losses = []
    for i in range(int(count)):
        state, loss = train_step(state, batches[i], variables, grams, weights, lr[i], config=config)
        losses.append(loss)
    hist = np.full(batches.shape[0], np.nan, np.float32)  # (on the host: no program per count)
    hist[: len(losses)] = jax.device_get(losses)
    return state, hist


@_program
def held_out(params, images, style, log_strength, variables, grams, weights, config: TrainConfig):
    """The objective's parts of each held-out image's output (no scaling): (B,) parts."""
    return sample_losses(params, images, style, log_strength, variables, grams, weights, config)


@_program
def style_grams(image, variables, config: TrainConfig):
    """One style image's Grams at the style layers, {layer: (C, C)}."""
    if config.luminance:
        image = grey(image)
    f = _vgg(image, variables, config.style_layers, config)
    return {n: losses.gram(f[n]) for n in config.style_layers}
