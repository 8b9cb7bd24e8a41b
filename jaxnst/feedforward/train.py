"""Training a feed-forward network on jaxnst's own objective: :func:`train_styles`.

The loop: photos are cropped on a background thread (:mod:`~jaxnst.feedforward.data`); each call
of the compiled :func:`~jaxnst.feedforward.steps.train_chunk` runs a chunk of steps; the batch is
sharded over every device (data-parallel, :mod:`jax.sharding`); between chunks the host reports
progress, checks for divergence, writes checkpoints and watches the time budget. Every step's
randomness derives from ``seed`` and the step number, so a run resumed from a checkpoint continues
bit for bit.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import serialization

from jaxnst.feedforward import data
from jaxnst.feedforward import steps as prog
from jaxnst.feedforward.loop import Loop, Progress, Setup, TrainDiverged  # noqa: F401
from jaxnst.feedforward.model_file import Model, ModelError, save
from jaxnst.feedforward.network import NetConfig, init_params
from jaxnst.loss import losses
from jaxnst.model import vgg
from jaxnst.pipeline import prepare
from jaxnst.pipeline.options import Options, make_options

# The still image's options that define the objective a network is trained on (their defaults
# are the still image's, so a network and a descent answer the same objective).
OBJECTIVE = (
    "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
    "pooling", "style_scale", "preserve_color", "style_loss",
)  # fmt: skip

# The model's parameters: their moving average with this decay per step (see train_styles), a
# horizon of ~50 steps. Screened at 300 steps (128 px, batch 4, Starry Night, 4 held-out photos;
# AMD EPYC): the held-out objective 8-10 % lower than the last step's parameters (1.295e6 against
# 1.413e6 with Adam 1e-3, 1.303e6 against 1.454e6 with 2e-3), flat for horizons of 25-100 steps.
AVERAGE_DECAY = 0.98

# The step size's schedule over a run (see steps.rates): decayed linearly to zero at the end of
# the steps or of --max-time, from LEARNING_RATE, with Adam's b2 = steps.ADAM_B2. Screened at the
# 10-minute race's horizon on this CPU (470 steps, 128 px, batch 4, Starry Night, 4 held-out
# photos; AMD EPYC Zen 4), held-out objective of the last step's parameters / their average:
#   Johnson's constant 1e-3, b2 0.999      1.359e6 / 1.250e6
#   linear from 2e-3, b2 0.99 (these)      1.086e6 / 1.100e6
#   linear from 3e-3, b2 0.99              1.121e6 / 1.147e6
#   linear from 2e-3, b2 0.999             1.224e6 / 1.253e6
SCHEDULE = "linear"
LEARNING_RATE = 2e-3  # Adam's first step size (Johnson's: 1e-3, constant)
# The update: Muon for the inner convolutions' kernels, Nesterov Adam for the rest (see
# steps.optimizer).
# Screened at 128 px, 300 steps, batch 4, the linear schedule from 2e-3, Starry Night, 4 held-out
# photos (AMD EPYC Zen 4, one core per run), held-out objective, seeds 0 / 1:
#   Adam                   1.393e6 / 1.462e6
#   Muon, update RMS 0.5   1.050e6 / 1.221e6   (0.75x / 0.84x)
OPTIMIZER = "muon"


def default_average(schedule: str) -> float:
    """The moving average's decay when none is given: :data:`AVERAGE_DECAY` with the constant
    step size, where it helped; none with the linear schedule, whose last steps are already
    small (at 470 steps the last step's parameters scored 1.3-2.3 % better than their average
    for three step sizes; see SCHEDULE)."""
    return AVERAGE_DECAY if schedule == "constant" else 0.0


class TrainResult(NamedTuple):
    """What :func:`train_styles` returns: the model and how its training went."""

    model: Model
    steps: int  # steps done in all (a resumed run counts the earlier ones)
    seconds: float  # this call's wall time
    images_per_second: float  # after the first chunk (compilation excluded)
    waited_seconds: float  # time the step waited for photos (0: the loader kept up)
    stopped: str | None  # None, "time" (the budget)
    held_out: dict[str, float]  # held-out objective per style, at strength 1 (or the range's low)
    skipped: str | None  # the loader's line about unreadable or too-small files


def objective_options(options: dict[str, Any]) -> Options:
    """The still image's options restricted to the objective; ValueError for others."""
    other = sorted(set(options) - set(OBJECTIVE))
    if other:
        raise ValueError(
            f"train_styles takes the objective's options ({', '.join(OBJECTIVE)}), not {other[0]!r}"
        )
    o = make_options(**options)
    for k in ("content_weight", "style_weight", "tv_weight"):
        if isinstance(getattr(o, k), tuple):
            raise ValueError(f"{k}: one value when training (a sweep is a strength range)")
    if o.style_loss != "gram":
        raise ValueError(f"style_loss {o.style_loss!r}: networks are trained on Gram matrices")
    if o.preserve_color == "histogram":
        raise ValueError(
            "preserve_color 'histogram' matches the style to one photo's colours; train with "
            "'luminance' (or apply with preserve_color='luminance')"
        )
    return o


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, np.float32).tobytes()).hexdigest()[:16]


def _photos(images: Any, size: int, batch: int, seed: int, held: int) -> tuple:
    """(training Photos, held-out (M, size, size, 3) array)."""
    if isinstance(images, (str, Path)) or (
        isinstance(images, Sequence) and images and isinstance(images[0], (str, Path))
    ):
        files = (
            data.list_images(images)
            if isinstance(images, (str, Path))
            else [Path(f) for f in images]
        )
        train, val = data.validation_split(files, held)
        photos: data.Photos = data.Photos(train, size, batch, seed)
        val_photos = data.Photos(val, size, 1, seed + 1)
        val_photos.bad = photos.bad  # one count of the files skipped
        check = [val_photos.sample(i) for i in range(len(val))] if val else []
    else:
        a = np.asarray(images, np.float32)
        if a.ndim != 4 or a.shape[-1] != 3 or len(a) == 0:
            raise ValueError(f"images must be a folder, files or (N, H, W, 3), got {a.shape}")
        if min(a.shape[1:3]) < size:
            raise ValueError(f"images are {a.shape[2]}x{a.shape[1]} px, smaller than size {size}")
        n_val = min(held, len(a) // 2)
        photos = ArrayPhotos(a[: len(a) - n_val], size, batch, seed)
        check = [x[:size, :size] for x in a[len(a) - n_val :]]
    return photos, (np.stack(check) if check else None)


class ArrayPhotos(data.Photos):
    """:class:`~jaxnst.feedforward.data.Photos` over arrays already in memory (random crops and
    flips, no rescaling)."""

    def __init__(self, images: np.ndarray, size: int, batch: int, seed: int = 0):
        super().__init__([Path(str(i)) for i in range(len(images))], size, batch, seed)
        self.images = images

    def _crop(self, path: Path, rng: np.random.Generator) -> np.ndarray | None:
        rng.uniform()
        flip = rng.random() < 0.5
        u, v = rng.random(2)
        im = self.images[int(str(path))]
        h, w = im.shape[:2]
        y, x = int(u * (h - self.size + 1)), int(v * (w - self.size + 1))
        crop = im[y : y + self.size, x : x + self.size]
        return crop[:, ::-1] if flip else crop


def style_targets(styles: list[np.ndarray], size: int, o: Options, variables: dict, cfg) -> dict:
    """{layer: (S, C, C)}: each style's Grams, the style resized to ``style_scale`` x ``size``."""
    per = []
    for s in styles:
        x = prepare.as_image(s, "style")
        if o.style_scale is not None:
            x = prepare.rescale(x, o.style_scale * size)
        per.append(prog.style_grams(x, variables, config=cfg))
    return {n: jax.numpy.stack([g[n] for g in per]) for n in cfg.style_layers}


def train_styles(
    styles: Any,
    images: Any,
    *,
    size: int = 256,
    batch: int = 4,
    steps: int | None = None,
    learning_rate: float = LEARNING_RATE,
    average_decay: float | None = None,
    schedule: str = SCHEDULE,
    optimizer: str = OPTIMIZER,
    width: float = 1.0,
    strengths: tuple[float, float] | None = None,
    knots: int = 5,
    seed: int = 0,
    chunk: int = 10,
    max_seconds: float | None = None,
    resume: Model | str | Path | None = None,
    variables: dict | None = None,
    style_names: Sequence[str] | None = None,
    held_out: int = 4,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 500,
    callback: Callable[[Progress, Callable[[], Model]], Any] | None = None,
    **options: Any,
) -> TrainResult:
    """Train one network for ``styles`` on photos (Johnson et al. 2016; Dumoulin et al. 2017).

    Args:
        styles: a style image (H, W, 3) float RGB in [0, 1], or a list of them: one network holds
            them all (conditional instance norm).
        images: a folder of photos, a list of files, or (N, H, W, 3) float RGB arrays (at least
            ``size`` px per side). ``held_out`` of them are kept out of training and scored.
        size, batch: training crop side and photos per step (a multiple of the device count).
        steps: training steps (default 2000).
        learning_rate, schedule, optimizer: the step size; "linear": the first step's, decayed
            to zero at the end of ``steps`` or ``max_seconds``, or "constant" (:data:`SCHEDULE`);
            "adam" or "muon" (:func:`~jaxnst.feedforward.steps.optimizer`).
        average_decay: the model is the parameters' moving average with this decay per step
            (:func:`~jaxnst.feedforward.steps.averaged`); 0: the last step's; None:
            :func:`default_average`.
        width: channel multiplier of the network (Johnson's 1.0 = 32, 64, 128 channels).
        strengths: (low, high): train over this range of multiples of ``style_weight``, drawn
            log-uniformly, the network conditioned on it (``knots`` instance-norm settings along
            log strength); None: the one strength 1.
        seed: photos' order and crops, style and strength draws, initial parameters.
        chunk: steps per compiled call.
        max_seconds: a wall-clock budget; training stops after the chunk that reaches it.
        resume: a model (or file) written with its training state: continue it, bit for bit.
        variables: VGG19 variables (default: the verified weights).
        checkpoint: a model file written every ``checkpoint_every`` steps, at the end, on Ctrl-C.
        callback: ``callback(progress, model)`` after each chunk; ``model()`` builds the model.
        **options: the objective, as :func:`jaxnst.stylize` takes it: ``content_weight``,
            ``style_weight``, ``tv_weight``, ``content_layers``, ``style_layers``, ``pooling``,
            ``style_scale`` (default 1.0 here: the style at the crop's size), ``preserve_color``
            ("none" or "luminance").

    Returns:
        :class:`TrainResult`. Raises ValueError (one line) for bad arguments,
        :class:`~jaxnst.feedforward.data.DataError` for unusable photos, :class:`TrainDiverged`.
    """
    t0 = time.perf_counter()
    options["average_decay"] = default_average(schedule) if average_decay is None else average_decay
    options.update(schedule=schedule, optimizer=optimizer)
    s = _setup(styles, images, size, batch, steps, learning_rate, width, strengths, knots, seed,
               chunk, resume, variables, style_names, held_out, options)  # fmt: skip
    run = Loop(s, chunk, batch, max_seconds, t0, checkpoint, checkpoint_every, callback)
    try:
        run.run()
    except KeyboardInterrupt:
        if checkpoint is not None:
            save(checkpoint, run.model())
        raise
    model = run.model()
    if checkpoint is not None:
        save(checkpoint, model)
    c = s.check
    scores = {} if c is None else held_out_loss(model, c, s.variables, s.grams, s.weights, s.cfg)
    return TrainResult(model, run.done, time.perf_counter() - t0, run.rate(), run.waited,
                       run.stopped, scores, s.photos.skipped_line())  # fmt: skip


def _setup(styles, images, size, batch, steps, learning_rate, width, strengths, knots, seed,
           chunk, resume, variables, style_names, held_out, options) -> Setup:  # fmt: skip
    """Options checked, network and objective configured, photos listed, targets computed, the
    state fresh or resumed."""
    total = 2000 if steps is None else int(steps)
    decay = float(options.pop("average_decay", 0.0))
    schedule = str(options.pop("schedule", "constant"))
    prog.rates(1.0, schedule, 0, 0, 1)  # ValueError naming an unknown schedule
    opt = str(options.pop("optimizer", "adam"))
    prog.optimizer(opt)  # ValueError naming an unknown optimizer
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"average_decay must be in [0, 1), got {decay!r}")
    options.setdefault("style_scale", 1.0)
    o = objective_options(options)
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    _check_numbers(size, batch, total, learning_rate, width, knots, chunk, len(style_list))
    names = list(style_names) if style_names else [f"style {i + 1}" for i in range(len(style_list))]
    lo, hi = (1.0, 1.0) if strengths is None else (float(strengths[0]), float(strengths[1]))
    if not (0 < lo <= hi and np.isfinite(hi)):
        raise ValueError(f"strengths must be 0 < low <= high, got {strengths!r}")
    net = NetConfig(float(width), len(style_list), 1 if lo == hi else int(knots), (lo, hi))
    variables, vgg_digest = prepare.default_variables(variables)
    variables = vgg.with_backward_kernels(variables)
    cfg = prog.TrainConfig(
        net, o.content_layers, o.style_layers, o.pooling, vgg.channels_of(variables),
        o.preserve_color == "luminance", stepwise=jax.default_backend() == "cpu", average=decay,
        optimizer=opt,
    )  # fmt: skip
    meta = {
        "styles": names, "style_digests": [_digest(np.asarray(x)) for x in style_list],
        "vgg19": vgg_digest, "size": int(size), "batch": int(batch),
        "learning_rate": float(learning_rate), "seed": int(seed), "luminance": cfg.luminance,
        "average_decay": decay, "schedule": schedule, "optimizer": opt,
        "objective": {k: _jsonable(getattr(o, k)) for k in OBJECTIVE},
    }  # fmt: skip
    if batch % jax.device_count():
        raise ValueError(f"batch {batch} must be a multiple of the device count "
                         f"({jax.device_count()})")  # fmt: skip
    photos, check = _photos(images, size, batch, seed, held_out)
    grams = style_targets(style_list, size, o, variables, cfg)
    weights = losses.Weights(*(jax.numpy.float32(getattr(o, k)) for k in ("content_weight",
                               "style_weight", "tv_weight")))  # fmt: skip
    state = prog.init_state(init_params(jax.random.PRNGKey(seed), net), seed, opt)
    history: list = []
    if resume is not None:
        state, history = _resumed(resume, state, meta, net, cfg.average)
    return Setup(cfg, net, meta, photos, check, grams, weights, variables, state, history, total,
                 np.float32(learning_rate), schedule)  # fmt: skip


def held_out_loss(model: Model, photos: np.ndarray, variables, grams, weights, cfg) -> dict:
    """Mean objective of the network's outputs on ``photos`` (M, H, W, 3), per style, at the
    default strength (1, or the trained range's low end)."""
    from jaxnst.feedforward.apply import check_strength

    ls = np.float32(np.log(check_strength(model, None)))
    out = {}
    for i, name in enumerate(model.styles):
        idx = np.full((len(photos),), i, np.int32)
        parts = prog.held_out(
            jax.device_put(model.params), photos, idx, np.full((len(photos),), ls), variables,
            grams, weights, config=cfg,
        )  # fmt: skip
        out[name] = float(np.mean(np.asarray(parts.total)))
    return out


def _resumed(
    resume: Model | str | Path, fresh: prog.TrainState, meta: dict, net: NetConfig, decay: float
) -> tuple:
    """The training state and history saved in ``resume``; ModelError if it was trained with
    something else (other styles, objective, crop, batch, network) or holds no training state."""
    from jaxnst.feedforward.model_file import load

    m = load(resume) if not isinstance(resume, Model) else resume
    name = str(resume) if not isinstance(resume, Model) else "model"
    if not m.train or "state" not in m.train:
        raise ModelError(f"{name}: holds no training state to resume")
    keys = ("styles", "style_digests", "vgg19", "size", "batch", "seed", "objective", "luminance",
            "optimizer")  # fmt: skip
    for k in keys:
        was = m.meta.get(k, "adam" if k == "optimizer" else None)  # (files before Muon: Adam)
        if was != meta.get(k):
            raise ModelError(
                f"{name}: was trained with another {k.replace('_', ' ')} "
                f"({was!r}, now {meta.get(k)!r}); resume with the same inputs"
            )
    if m.net != net:
        raise ModelError(f"{name}: holds another network ({m.net}, now {net})")
    saved, old = dict(m.train["state"]), "average" not in m.train["state"]
    if old:  # written before the moving average: it starts from the saved parameters
        saved["average"] = saved["params"]
    state = serialization.from_state_dict(fresh, saved)
    if old:
        t = int(state.step)
        state = state._replace(average=jax.tree.map(lambda p: p * (1.0 - decay**t), state.params))
    hist = np.asarray(m.train.get("history", np.zeros((0, 2))), np.float64).reshape(-1, 2)
    return state, hist.tolist()


def _check_numbers(size, batch, total, lr, width, knots, chunk, n_styles) -> None:
    numbers = (("size", size, 16), ("batch", batch, 1), ("steps", total, 0), ("knots", knots, 2),
               ("chunk", chunk, 1), ("styles", n_styles, 1))  # fmt: skip
    for name, v, least in numbers:
        if int(v) != v or v < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")
    if size % 4:
        raise ValueError(f"size must be a multiple of 4 (the network halves twice), got {size}")
    for name, v in (("learning_rate", lr), ("width", width)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v
