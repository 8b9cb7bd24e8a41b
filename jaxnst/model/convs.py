"""Alternative formulations of VGG's 3x3 SAME convolution, and the per-layer choice among them.

XLA:CPU runs a bfloat16 *convolution* no faster than a float32 one, but a bfloat16 *dot* reaches a
CPU's bf16 matrix units (AMX, AVX512-BF16) where it has them. So a convolution can be rewritten as
dots (issue 15):

``xla``     ``lax.conv_general_dilated`` (today's path).
``taps9``   one dot of the padded input with all nine taps at once (C x 9O), then nine shifted adds.
``row3``    im2col along the row (3 taps, 3C wide), one dot (3C x 3O), then three shifted adds.
``im2col``  full im2col (9C wide), one dot (9C x O).
``pertap``  nine dots (C x O), one per tap, summed.

Each runs with its operands in float32, bfloat16 (``"row3:bf16"``) or ``bf16x3``: each operand split
into a bfloat16 high and low part and the three significant products summed, as one dot over three
times the channels (about float32's accuracy at three times bf16's arithmetic). The products
accumulate and come out in float32, so activations, Gram matrices, losses and the optimizer stay
float32.

Plain bf16 operands are not accurate enough for the descent: measured with the real weights at
64 px, the image gradient of each style layer's Gram loss is off by 0.5-8 % (conv1_1..conv5_1,
worst on noise), against <= 0.08 % with ``bf16x3`` (tests/test_convs.py holds the 2 % bar). So the
automatic choice considers float32 and ``bf16x3`` only; ``precision="bf16"`` remains the explicit,
approximate mode. The
input-gradient (this package differentiates with respect to the image only) is the same SAME
convolution with the flipped, transposed kernel, so it gets a formulation of its own: a layer's
plan is a pair ``(forward, backward)``.

Which one is fastest depends on the CPU and on the layer's shape, so it is measured, not guessed,
and only where a bf16x3 form can win (issue 33): :func:`candidates_for` offers float32 XLA alone on
a CPU without bf16 instructions (nothing is timed there); :func:`choose_plan` takes a layer's
choice from this machine's timings of its channels and size bucket (``~/.cache/jaxnst/
conv_plans.json``, per CPU and jax version), else from the defaults shipped for the CPU's family
(:mod:`jaxnst.model.conv_defaults`), else times the candidates, heaviest layers first, within
:data:`TIMING_SHARE` of a default run (``jaxnst warmup`` without a bound). :func:`resolve` turns
``precision="auto"`` into a plan.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.model.conv_forms import (  # noqa: F401 (re-exported: this module's face)
    DTYPES,
    FORMS,
    FP32,
    conv,
    conv3x3,
    parse,
)
from jaxnst.model.cpu import (  # noqa: F401 (re-exported)
    BF16_FLAGS,
    Cpu,
    _cache_path,
    cpu_flags,
    cpu_has_bf16_units,
    cpu_id,
    cpu_info,
    cpu_model,
    shipped_defaults,
)
from jaxnst.model.cpu import (
    load_cache as _load_cache,
)
from jaxnst.model.cpu import (
    save_cache as _save_cache,
)
from jaxnst.model.layers import LAYERS

# What the per-layer search tries: float32 XLA and the accurate bf16x3 forms (see above). The
# float32 dot forms never beat XLA's float32 convolution where measured (scripts/bench.py --layers).
CANDIDATES = ("xla:fp32", "xla:bf16x3", "taps9:bf16x3", "row3:bf16x3", "im2col:bf16x3")


def candidates_for(cpu: Cpu) -> tuple[str, ...]:
    """The formulations that can win on ``cpu``: the bf16x3 forms only where a bf16 dot has
    instructions of its own. Without them a bf16 dot is emulated and ``bf16x3`` does three of
    them, so float32 XLA is the only candidate and nothing is timed (issue 33)."""
    return CANDIDATES if cpu.flags & BF16_FLAGS else (FP32,)


# ---------------------------------------------------------------------------------------------
# Plans: keyed by layer (its channels) and size bucket, timed within a budget


def layer_shapes(
    height: int, width: int, layers: Sequence[str], channels: Sequence[int]
) -> dict[str, tuple[int, int, int, int]]:
    """``{layer: (H, W, C_in, C_out)}`` for every convolution up to the deepest of ``layers``."""
    last = max(LAYERS.index(n) for n in layers)
    out, h, w, c = {}, height, width, 3
    for i, name in enumerate(LAYERS[: last + 1]):
        b = int(name[4]) - 1
        if i and name.endswith("_1"):
            h, w = h // 2, w // 2
        out[name] = (h, w, c, channels[b])
        c = channels[b]
    return out


# A layer's plan is keyed by its channels and the octave of its pixel count (2^b <= H W <
# 2^(b+1)), and timed at the bucket's own shape (2^(b//2) x 2^(b - b//2) px), so every photo size
# whose layer falls in the octave reuses one measurement. Above BUCKET_CAP (2^17 px, 256 x 512:
# conv1 of a 512 x 256 image) all sizes share the top bucket: a convolution's time grows with its
# pixels alike for every form, and the choices measured at 384x512, 681x1024, 768x1024 and
# 1536x2048 px on an AMX Xeon were the same, but timing them at 2048x1536 took over 4 minutes of a
# first run (issue 22).
BUCKET_CAP = 17


def bucket(h: int, w: int) -> int:
    """The size bucket of an (h, w) layer: floor(log2(h w)), at most :data:`BUCKET_CAP`."""
    return min(max(0, int(math.log2(max(1, h * w)))), BUCKET_CAP)


def bucket_shape(b: int, c: int, o: int) -> tuple[int, int, int, int]:
    """The (H, W, C, O) shape at which bucket ``b`` of a C -> O convolution is timed."""
    return 2 ** (b // 2), 2 ** (b - b // 2), c, o


def plan_key(shape: tuple[int, int, int, int]) -> str:
    """``"256x512@13"``: a (H, W, C, O) convolution's channels and size bucket."""
    h, w, c, o = shape
    return f"{c}x{o}@{bucket(h, w)}"


def time_conv(shape: tuple[int, int, int, int], spec: str, reps: int = 3) -> float:
    """Best-of-``reps`` seconds of one compiled convolution (1, H, W, C) -> (1, H, W, O)."""
    h, w, c, o = shape
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, h, w, c)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, c, o)) * 0.05, jnp.float32)
    f = jax.jit(functools.partial(conv, spec=spec))
    f(x, k).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f(x, k).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return best


# Timing is bounded by this share of a default run (500 iterations, an evaluation each) at the
# size being planned, the evaluation's time guessed from the measured float32 convolutions; the
# layers that carry the most arithmetic are timed first, and those left over run float32 until a
# later run (or `jaxnst warmup`, which has no bound) times them.
TIMING_SHARE = 0.05
RUN_ITERATIONS = 500
# Seconds one candidate costs to time (compile and three runs), for the time estimate before any
# was timed: ~0.55 s on the Zen 4 EPYC (2 cores), 195 of them in 107 s at 384 px.
FORM_SECONDS = 0.55
_clock = time.perf_counter  # (tests replace it)


class _Need(NamedTuple):
    """One convolution of the plan: its key, its real (H, W, C, O) shape and its candidates."""

    key: str
    shape: tuple[int, int, int, int]
    candidates: tuple[str, ...]


def _needs(
    height: int, width: int, layers: Sequence[str], channels: Sequence[int], cands: Sequence[str]
) -> list[tuple[_Need, _Need]]:
    """(forward, input-gradient) needs per convolution up to the deepest of ``layers``."""
    out = []
    for h, w, c, o in layer_shapes(height, width, layers, channels).values():
        fwd, bwd = (h, w, c, o), (h, w, o, c)
        out.append(
            (
                _Need(plan_key(fwd), fwd, _fitting(fwd, cands)),
                _Need(plan_key(bwd), bwd, _fitting(bwd, cands)),
            )
        )
    return out


# A bf16x3 form is chosen only where it takes at most this share of float32's time: below that
# the timings' noise (a busy core, best of three runs) decides, and float32 is exact.
WIN_MARGIN = 0.9


def _pick(rec: dict, candidates: Sequence[str]) -> str:
    """The fastest of ``candidates`` by the timings ``rec``; float32 XLA unless another beats it
    by :data:`WIN_MARGIN`."""
    best = min(candidates, key=lambda s: rec[s])
    if FP32 in candidates and rec[best] > WIN_MARGIN * rec[FP32]:
        return FP32
    return best


def _known(need: _Need, records: dict, shipped: dict | None) -> str | None:
    """The chosen form for ``need`` from this machine's timings or the shipped defaults; None
    where it is not known yet."""
    rec = records.get(need.key)
    if isinstance(rec, dict) and all(s in rec for s in need.candidates):
        return _pick(rec, need.candidates)
    if shipped is not None:
        rec = shipped.get("timings", {}).get(need.key)
        if rec and any(s in rec for s in need.candidates):
            return _pick(rec, [s for s in need.candidates if s in rec])
        if shipped.get("default") in need.candidates:
            return str(shipped["default"])
    return None


def _flops(shape: tuple[int, int, int, int]) -> float:
    h, w, c, o = shape
    return 2.0 * 9 * h * w * c * o


def _budget(needs: list[tuple[_Need, _Need]], records: dict) -> float | None:
    """:data:`TIMING_SHARE` of :data:`RUN_ITERATIONS` evaluations, an evaluation guessed as every
    forward and input-gradient convolution at the float32 rate measured here; None before any
    float32 convolution was timed."""
    rates = [
        _flops(bucket_shape(int(k.split("@")[1]), *map(int, k.split("@")[0].split("x"))))
        / rec[FP32]
        for k, rec in records.items()
        if isinstance(rec, dict) and rec.get(FP32)
    ]
    if not rates:
        return None
    total = sum(_flops(n.shape) for pair in needs for n in pair)
    return TIMING_SHARE * RUN_ITERATIONS * total / max(rates)


def _timed_shape(n: _Need) -> tuple[int, int, int, int]:
    return bucket_shape(int(n.key.split("@")[1]), *n.shape[2:])


def _time_unknown(
    needs: list[tuple[_Need, _Need]], records: dict, shipped: dict | None, budget: float | None
) -> None:
    """Time the candidates of every need not known yet, the ones carrying the most arithmetic
    first, while the time spent stays within ``budget`` (None: :func:`_budget`)."""
    todo: dict[str, tuple[float, _Need]] = {}
    for pair in needs:
        for n in pair:
            if _known(n, records, shipped) is None:
                f, _ = todo.get(n.key, (0.0, n))
                todo[n.key] = (f + _flops(n.shape), n)
    if not todo:
        return
    order = [n for _, n in sorted(todo.values(), key=lambda t: -t[0])]
    bound = (
        "all of them"
        if budget == math.inf
        else f"at most {TIMING_SHARE:.0%} of a {RUN_ITERATIONS}-iteration run"
    )
    print(
        f"jaxnst: precision auto: timing convolution forms for this CPU ({len(order)} layer "
        f"shapes, {bound}; cached in {_cache_path()})",
        file=sys.stderr,
    )
    start, forms, left = _clock(), 0, 0
    if budget is None and _budget(needs, records) is None:  # the rate first: it sets the bound
        n = order[0]
        records.setdefault(n.key, {})[FP32] = time_conv(_timed_shape(n), FP32)
        forms = 1
    limit = budget if budget is not None else _budget(needs, records)
    for n in order:
        rec = records.setdefault(n.key, {})
        missing = [s for s in dict.fromkeys((FP32, *n.candidates)) if s not in rec]
        spent = _clock() - start
        if forms and limit is not None and spent + spent / forms * len(missing) > limit:
            left += 1
            continue
        for s in missing:
            rec[s] = time_conv(_timed_shape(n), s)
            forms += 1
    bound = "" if limit is None or limit == math.inf else f" of at most {limit:.1f} s"
    rest = f"; {left} layer shapes left at fp32 for now (`jaxnst warmup` times them)" * bool(left)
    print(
        f"jaxnst: precision auto: timed {forms} forms in {_clock() - start:.1f} s{bound}{rest}",
        file=sys.stderr,
    )


def choose_plan(
    height: int,
    width: int,
    layers: Sequence[str],
    channels: Sequence[int],
    candidates: Sequence[str] | None = None,
    budget: float | None = None,
    measure: bool = True,
) -> tuple[tuple[str, str], ...]:
    """Per convolution up to the deepest of ``layers``: (forward, input-gradient) formulation,
    each the fastest of ``candidates`` (default: :func:`candidates_for` this CPU) that fits at
    the real shape, by this machine's timings of its size bucket, else this CPU family's shipped
    defaults, else timed now (``measure``) within ``budget`` seconds (None: :data:`TIMING_SHARE`
    of a default run; ``math.inf`` for ``jaxnst warmup``). What stays unknown is float32."""
    cpu = cpu_info()
    cands = candidates_for(cpu) if candidates is None else tuple(candidates)
    needs = _needs(height, width, layers, channels, cands)
    if cands == (FP32,):
        return tuple((FP32, FP32) for _ in needs)
    shipped = shipped_defaults(cpu)
    cache = _load_cache()
    key = f"{cpu_id(cpu)}|jax {jax.__version__}"
    records = dict(cache.get(key) or {})
    if measure and any(_known(n, records, shipped) is None for pair in needs for n in pair):
        _time_unknown(needs, records, shipped, budget)
        cache = _load_cache()  # (another process may have written meanwhile)
        cache[key] = {**(cache.get(key) or {}), **records}
        _save_cache(cache)
    return tuple(
        tuple(_known(n, records, shipped) or FP32 for n in pair)  # type: ignore[misc]
        for pair in needs
    )


def pending_seconds(
    height: int,
    width: int,
    layers: Sequence[str],
    channels: Sequence[int],
    eval_seconds: float | None = None,
) -> float:
    """Seconds ``precision="auto"`` will spend timing forms for this size (for the time
    estimate): :data:`FORM_SECONDS` per candidate not known yet, at most :data:`TIMING_SHARE` of
    :data:`RUN_ITERATIONS` evaluations of ``eval_seconds`` each. 0 where nothing can win."""
    if jax.default_backend() != "cpu":
        return 0.0
    cpu = cpu_info()
    cands = candidates_for(cpu)
    if cands == (FP32,):
        return 0.0
    shipped = shipped_defaults(cpu)
    records = _load_cache().get(f"{cpu_id(cpu)}|jax {jax.__version__}") or {}
    unknown = {
        n.key: len(n.candidates)
        for pair in _needs(height, width, layers, channels, cands)
        for n in pair
        if _known(n, records, shipped) is None
    }
    s = FORM_SECONDS * sum(unknown.values())
    if eval_seconds is not None:
        s = min(s, TIMING_SHARE * RUN_ITERATIONS * eval_seconds)
    return s


# The widest buffer a formulation may add: im2col holds 9 C values per pixel and row3 3 C, in the
# bf16x3 split (three parts). At 2048x1536 px in a sweep of 2, conv1_2's im2col asked XLA for one
# 43.5 GB buffer (RESOURCE_EXHAUSTED) where the memory model, which knows float32 convolutions,
# said 17.8 GiB in all; above this size a layer keeps to the forms without such buffers.
PATCH_LIMIT = 1 << 30
_PATCH_TAPS = {"im2col": 9, "row3": 3}


def _fitting(shape: tuple[int, int, int, int], candidates: Sequence[str]) -> tuple[str, ...]:
    """The ``candidates`` whose patch buffer at this (H, W, C, O) shape stays under PATCH_LIMIT."""
    h, w, c, _ = shape
    return tuple(
        s for s in candidates if h * w * c * _PATCH_TAPS.get(s.split(":")[0], 0) * 12 <= PATCH_LIMIT
    )


def resolve(
    precision: str,
    height: int,
    width: int,
    layers: Sequence[str],
    channels: Sequence[int],
    budget: float | None = None,
    measure: bool = True,
) -> tuple[str, tuple[tuple[str, str], ...] | None]:
    """``precision`` as given -> (the VGG module's precision, its per-layer plan or None).

    "fp32" and "bf16" pass through unchanged. "auto" is float32 XLA convolutions (no plan) except
    on a CPU with bf16 instructions, where each layer gets the fastest known formulation
    (:func:`choose_plan`; ``budget`` and ``measure`` go there); a plan that is float32 XLA
    everywhere is returned as None, so the program is exactly fp32's."""
    if precision != "auto":
        return precision, None
    if jax.default_backend() != "cpu":
        return "fp32", None
    plan = choose_plan(height, width, layers, channels, budget=budget, measure=measure)
    if all(p == (FP32, FP32) for p in plan):
        return "fp32", None
    return "fp32", plan
