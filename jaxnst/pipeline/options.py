"""Stage 1 of the pipeline, **options**: :class:`Options` is the one home of every default, and
:func:`make_options` validates them once.

In: keyword arguments (as a user passes them to :func:`jaxnst.stylize`, or the CLI derives from its
flags). Out: a frozen :class:`Options` whose values are checked (types, ranges, names of layers and
choices); sweepable options given as sequences become tuples. Every later stage trusts it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from jaxnst.model import vgg
from jaxnst.pipeline import checks

CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
SWEEPABLE = ("content_weight", "style_weight", "tv_weight", "seed", "photoreal_weight")
MIN_SIDE = 16  # four 2x2 poolings before conv5_1 need at least 16 px per side


def _field(default: Any, help: str, **kw: Any) -> Any:
    return dataclasses.field(default=default, metadata={"help": help, **kw})


@dataclasses.dataclass(frozen=True)
class Options:
    """Every option of :func:`stylize`, with its default.

    Default weights: content 1, style 3e-4, tv 1e4, with our normalisation (see
    :mod:`jaxnst.loss.losses`; the numbers are not the paper's alpha/beta). Chosen on tubingen.jpg
    with starry_night.jpg and the_scream.jpg at 256 px, 500 L-BFGS iterations from the content
    image: at 1e-6 the result is barely touched (style loss -13 % after 200 iterations), at 1e-5
    lightly tinted, at 1e-4 starry_night is strongly stylized (-97.7 %) but the_scream only reaches
    -90 % and leaves the houses photographic; at 3e-4 both are clearly stylized with the church,
    houses and river recognisable (style loss -99.1 % and -96.7 %). At 128 px 1e-3 still keeps the
    subject. The TV term is small (0.1-0.3 % of the final total); raise it for smoother results.
    Several values of ``content_weight``, ``style_weight``, ``tv_weight`` or ``seed`` make a batched
    sweep (see :func:`stylize`).
    """

    iterations: int = _field(500, "descent steps (L-BFGS iterations or Adam steps)")
    optimizer: Any = _field(
        "lbfgs",
        "lbfgs (paper, default), adam, or rmsprop (STROTSS's; PyTorch's defaults: decay 0.99, "
        "eps 1e-8); in the API also any optax.GradientTransformation, run like Adam (one "
        "evaluation per step; learning_rate is then the transformation's own)",
        choices=("lbfgs", "adam", "rmsprop"),
    )
    learning_rate: float = _field(
        0.02,
        "Adam (or RMSprop) step size, in pixel units of [0, 1]; with param=laplacian the pyramid's "
        "levels share it, each moving learning_rate / levels (L-BFGS uses a line search and "
        "ignores it)",
    )
    content_weight: float | tuple[float, ...] = _field(1.0, "weight of the content loss (alpha)")
    style_weight: float | tuple[float, ...] = _field(3e-4, "weight of the style loss (beta)")
    tv_weight: float | tuple[float, ...] = _field(
        1e4, "weight of the total-variation smoothness loss"
    )
    photoreal_weight: float | tuple[float, ...] = _field(
        0.0,
        "weight of the photorealism term (Luan et al. 2017): the content's Matting Laplacian "
        "energy of the output, per pixel (so one value holds at every size); 0: off",
    )
    photoreal_smooth: float | None = _field(
        None,
        "lambda' of FastPhotoStyle's smoothing (Li et al. 2018) of the final image: (I + "
        "lambda' L) y = x by conjugate gradients (jaxnst.loss.matting.smooth); 1e3 ~ their "
        "alpha 0.9999; 0 or none: off",
    )
    photoreal_adapt: bool = _field(
        False,
        "with init recolour: photoreal_weight times (s / 0.02)^2 where the recoloured start's "
        "unexplained share s is above 0.02 (method photoreal's own weight does so)",
    )
    init: str = _field(
        "content",
        "start: content, noise (seeded), recolour (content in the style's colours, "
        "per label region: jaxnst.loss.recolour), or an image file (CLI) / array (API)",
    )
    seed: int | tuple[int, ...] = _field(0, "random seed for noise init")
    key: Any = _field(
        None,
        "API only: a jax.random key for noise init instead of seed (typed, jax.random.key(0), "
        "or raw uint32, jax.random.PRNGKey(0)); a batch of keys (jax.random.split) is a sweep. "
        "Held as raw threefry key data, uint32 (2,) or (K, 2)",
        api_only=True,
    )
    pooling: str = _field(
        "max", "max (as VGG19 was trained) or avg (the paper's choice)", choices=("max", "avg")
    )
    content_layers: tuple[str, ...] = _field(CONTENT_LAYERS, "VGG19 layers for content")
    style_layers: tuple[str, ...] = _field(STYLE_LAYERS, "VGG19 layers for style")
    chunk: int = _field(20, "steps per compiled program call; progress is reported between chunks")
    lbfgs_memory: int = _field(10, "L-BFGS history size")
    style_blend_weights: tuple[float, ...] | None = _field(
        None, "weights of several style images (normalised to sum to 1; default: equal)"
    )
    style_scale: float | None = _field(
        None,
        "resize the style so its longer side is this times the content's (API default: use "
        "the style as given; the CLI passes 1.0)",
    )
    preserve_color: str = _field(
        "none",
        "none, luminance (transfer on luma, keep the content's "
        "chroma), histogram (give the style the content's "
        "colour mean and covariance first) or oklab (Kolkin et al.'s NNST final "
        "correction in OkLab, the output's lightness with the content's chroma moved to the "
        "style's colour statistics; jaxnst.loss.nnst.colour_correct)",
        choices=("none", "luminance", "histogram", "oklab"),
    )
    style_loss: str = _field(
        "gram",
        "gram (the paper's), wasserstein (match each layer's mean and covariance: 2-Wasserstein "
        "distance between Gaussians) or remd (STROTSS: relaxed earth mover's distance between "
        "sampled hypercolumns, plus moments and palette; jaxnst.loss.sampled) or nnst "
        "(Kolkin et al. 2022: cosine distance of the output's hypercolumns to the content's "
        "nearest style neighbours; jaxnst.loss.neighbours)",
        choices=("gram", "wasserstein", "remd", "nnst"),
    )
    content_loss: str = _field(
        "mse",
        "mse (the paper's: squared difference of activations) or self_similarity (STROTSS: "
        "the cosine self-distances of sampled hypercolumns, as the content's) or nnst (cosine "
        "distance of the output's NNST hypercolumns to the content's)",
        choices=("mse", "self_similarity", "nnst"),
    )
    method: str = _field(
        "gatys",
        "gatys, or strotss: Kolkin et al. 2019's recipe (remd style, self-similarity content, "
        "laplacian param, rmsprop, content weight 16 halved each scale, their coarse-to-fine "
        "schedule); or nnst: Kolkin et al. 2022's Neural Neighbor Style Transfer (nnst style "
        "and content terms, laplacian param, adam, 100 steps at each of 64, 128... px up to the "
        "size, 150 final; their OkLab colour step: --preserve-color oklab); or photoreal: Luan "
        "et al. 2017's Deep Photo Style Transfer in one run (their layers, from the content "
        "recoloured per label region, L-BFGS, 2/5 of the iterations at half size, style 3e-3, "
        "photoreal 1e10 adapted to the start, smoothing 3; "
        "docs/site/photoreal.md); options given explicitly override it",
        choices=("gatys", "strotss", "nnst", "photoreal"),
    )
    nnst_rotations: bool = _field(
        False,
        "nnst: add the style's 90/180/270 degree rotations to the bank its neighbours come "
        "from (the authors' default; four times the search)",
    )
    nnst_final_steps: int | None = _field(
        None,
        "nnst: Adam steps of the authors' final pass after the scales, matching per layer "
        "(default: 1.5x method nnst's --iterations; 0: off; --scales none: the pass alone)",
    )
    nnst_refresh: int = _field(10, "nnst: final pass: search matches every N steps (1: each)")
    samples: int = _field(
        1024, "remd / self_similarity: points compared per evaluation (the paper's 1024)"
    )
    style_samples: int = _field(5000, "remd: points of the style, drawn once (the paper's 5000)")
    resample_every: int = _field(1, "remd / self_similarity: new points every N steps")
    ema_decay: float | None = _field(
        None,
        "Adam only: return an exponential moving average of "
        "the iterates with this decay (e.g. 0.95)",
    )
    scales: tuple[int, ...] | str | None = _field(
        None,
        "coarse-to-fine: longer sides to optimise at first (e.g. 256 512), each stage "
        "starting from the previous result upsampled; the content's own size comes last. "
        "auto: the full size halved down to 256 px (1024: 256 512; none below 512 px), the "
        "iterations doubling at each halving so the whole costs about --iterations full-size "
        "iterations, just over half of it at the full size "
        "(jaxnst.pipeline.multiscale.auto_schedule; strotss, nnst, photoreal: their own); "
        "none: single-scale",
    )
    scale_iterations: tuple[int, ...] | None = _field(
        None, "iterations at each of --scales (default: --iterations at every scale)"
    )
    linesearch: str = _field(
        "auto",
        "L-BFGS line search: zoom (strong Wolfe), backtracking "
        "(Armijo), or auto: zoom (each member of a batch runs its own search; one evaluation "
        "per trial, see jaxnst.optim.optimize)",
        choices=("auto", "zoom", "backtracking"),
    )
    precision: str = _field(
        "auto",
        "auto (default): fp32, except on a CPU with bf16 matrix units (AMX, AVX512-BF16), where "
        "each convolution runs in the fastest form measured there, XLA's fp32 or bf16x3 dots at "
        "fp32's accuracy (see jaxnst.model.convs); fp32; or bf16: convolutions and activations in "
        "bfloat16, Grams and losses in float32 (for GPUs and TPUs; see README)",
        choices=("auto", "fp32", "bf16"),
    )
    remat: bool = _field(
        False,
        "recompute each VGG block's activations in the backward pass "
        "instead of storing them: less memory for larger images on GPUs "
        "and TPUs, about one extra forward pass of compute (XLA:CPU merges "
        "the recomputation back, so it changes nothing on the CPU)",
    )
    extra_loss: Any = _field(
        None,
        "API only: extra_loss(image (H, W, 3), feats {layer: (H', W', C)}) -> scalar, added to "
        "the total inside the compiled loop (feats: the content and style layers). Compiled as a "
        "static setting: reuse one function object, a new lambda each call compiles anew",
        api_only=True,
    )
    tileable: bool = _field(
        False,
        "seamless tiles: circular padding in every VGG convolution and a wrap-around TV term, "
        "so the result repeats without a seam (exact when both sides are multiples of 16)",
    )
    tile: int | None = _field(
        None,
        "evaluate the objective tile by tile, N px tiles (a multiple of 16) plus a halo: the same "
        "loss and gradient in a fraction of the memory, for print sizes",
    )
    param: str = _field(
        "pixels",
        "what the descent moves: pixels, or laplacian: a pyramid of pyramid_levels halvings whose "
        "upsampled sum is the image (large areas move together: no pixel-scale speckle; "
        "jaxnst.optim.param)",
        choices=("pixels", "laplacian"),
    )
    pyramid_levels: int = _field(
        5, "param=laplacian: halvings of the pyramid (fewer where the image is too small)"
    )
    max_seconds: float | None = _field(
        None,
        "a wall-clock budget in seconds, from the call (every scale included): at the budget "
        "the descent stops with the last completed chunk's image and Result.stopped_on_time "
        "(the CLI's --max-time)",
        api_only=True,
    )


def make_options(**options: Any) -> Options:
    """Options from keyword arguments, validated; unknown names and bad values raise ValueError
    with a one-line message naming the option."""
    names = {f.name for f in dataclasses.fields(Options)}
    for k in options:
        if k not in names:
            raise ValueError(f"unknown option {k!r}; expected one of {', '.join(sorted(names))}")
    o = Options(**_normalise(_method(dict(options))))
    checks.check_numbers(o)
    checks.check_sequences(o)
    checks.check_choices(o)
    checks.check_api_only(o)
    return o


# What ``method="strotss"`` sets, unless given: Kolkin et al.'s reference code, in our units
# (its images are in [-1, 1], ours in [0, 1]: its learning rate 2e-3 per level is our 1e-3).
STROTSS = dict(
    style_loss="remd",
    content_loss="self_similarity",
    param="laplacian",
    optimizer="rmsprop",
    learning_rate=6e-3,  # 1e-3 for each of the 6 levels (pyramid_levels=5 halvings)
    content_weight=16.0,
    style_weight=1.0,
    tv_weight=0.0,
    iterations=200,
    scales="auto",
)


# What ``method="nnst"`` sets, unless given: Kolkin et al. 2022's recipe (their code: Adam, lr 2e-3
# for each level of a Laplacian pyramid, 200 steps per scale). Content weight 0.12, not their
# 1 - alpha = 0.25: ours weighs a content term (theirs blends the search image), and 0.12 measured
# closer to STROTSS's relaxed EMD on three pairs; 100 steps a scale, not 200, and a final pass of
# 150: closer again on all three, in less time (docs/site/nnst.md).
NNST = dict(
    style_loss="nnst",
    content_loss="nnst",
    param="laplacian",
    optimizer="adam",
    learning_rate=1.2e-2,  # 2e-3 for each of the 6 levels (pyramid_levels=5 halvings)
    content_weight=0.12,
    style_weight=1.0,
    tv_weight=0.0,
    iterations=100,
    scales="auto",
)  # Their final colour correction is preserve_color="oklab" (off: docs/site/nnst.md)


# What ``method="photoreal"`` sets, unless given: Luan et al. 2017's recipe (DPST's deep_photostyle
# .lua: content conv4_2 weight 5, style conv1_1..5_1 weight 100) in our units, from a recoloured
# start (docs/site/photoreal.md): their content MSE is ten times our 0.5 * mean; their Grams are
# divided by C H W, ours by H W: their style 100 is our 200 / C^2 per layer, 3e-3 at C = 256. Their
# lambda 1e4 at 700 px converts to 1.6e8 here; the DPST examples needed 1e10.
PHOTOREAL = dict(
    content_layers=CONTENT_LAYERS,
    style_layers=STYLE_LAYERS,
    init="recolour",  # theirs: a pass without the term first
    optimizer="lbfgs",
    iterations=500,  # theirs: 1000 + 1000; ours 200 at half size + 300 (multiscale.
    scales="auto",  # photoreal_schedule): 0.7 of what our Gatys default costs
    content_weight=1.0,
    style_weight=3e-3,
    photoreal_weight=1e10,  # 1.6e8 let the style's texture in; raised for an unphotographic
    # start (photoreal_adapt, unless a weight is given: _method)
    photoreal_smooth=3.0,  # a light smoothing (FastPhotoStyle's ~1e3 washes the style out)
)


def _method(options: dict[str, Any]) -> dict[str, Any]:
    """``method``'s presets under the options given; REMD's scale is not the Gram loss's, so
    ``style_loss="remd"`` alone defaults ``style_weight`` to 1 (the paper's)."""
    if options.get("method") == "strotss":
        return STROTSS | options
    if options.get("method") == "nnst":
        return NNST | options
    if options.get("method") == "photoreal":  # its weight adapts; one given is kept as given
        return PHOTOREAL | {"photoreal_adapt": "photoreal_weight" not in options} | options
    if options.get("style_loss") in ("remd", "nnst"):
        return {"style_weight": 1.0} | options
    return options


def _normalise(options: dict[str, Any]) -> dict[str, Any]:
    """Layer names checked, sequences turned into tuples (the form :class:`Options` holds)."""
    for k in ("content_layers", "style_layers"):
        if k in options:
            options[k] = vgg.check_layers(options[k], what=k[:-1].replace("_", " "))
    if options.get("key") is not None:
        options["key"] = key_data(options["key"])
    if "scales" in options:
        options["scales"] = _scales_word(options["scales"])
    for k in ("scales", "scale_iterations"):
        v = options.get(k)
        if v is not None and not isinstance(v, (tuple, str)):
            try:
                options[k] = tuple(int(x) for x in options[k])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{k} must be a sequence of positive integers, got {options[k]!r}"
                ) from None
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
            raise ValueError(
                f"{k} must be a number or a 1-D sequence of numbers, got {v!r}"
            ) from None
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"{k} must be a number or a non-empty 1-D sequence, got {v!r}")
        options[k] = tuple(a.tolist())
    return options


def _scales_word(v: Any) -> Any:
    """'auto' and 'none' (any case; also as the CLI's one-item list) -> "auto" and None."""
    if isinstance(v, (list, tuple)) and len(v) == 1 and isinstance(v[0], str):
        v = v[0] if v[0].strip().lower() in ("auto", "none") else v
    if not isinstance(v, str):
        return v
    word = v.strip().lower()
    if word not in ("auto", "none"):
        raise ValueError(
            f"scales must be 'auto', 'none' or a sequence of positive integers, got {v!r}"
        )
    return None if word == "none" else "auto"


def key_data(key: Any) -> np.ndarray:
    """A ``jax.random`` key, or a 1-D batch of keys, as raw threefry key data: uint32 (2,) or
    (K, 2). Typed keys (``jax.random.key``) and raw ones (``jax.random.PRNGKey``) are accepted;
    ValueError (naming ``key``) otherwise."""
    expected = "a jax.random key (jax.random.key(0) or PRNGKey(0)) or a 1-D batch of keys"
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    elif isinstance(key, (bool, int, float, str, bytes)) or not hasattr(key, "dtype"):
        raise ValueError(f"key must be {expected}, got {type(key).__name__} (for an int: seed=)")
    elif key.dtype != np.uint32:
        raise ValueError(f"key must be {expected}, got an array of dtype {key.dtype}")
    a = np.asarray(key, np.uint32)
    if a.ndim not in (1, 2) or a.shape[-1] != 2 or a.size == 0:
        raise ValueError(
            f"key must be {expected} (threefry: raw data of shape (2,) or (K, 2)), got shape "
            f"{a.shape}"
        )
    a = a.copy()
    a.flags.writeable = False
    return a
