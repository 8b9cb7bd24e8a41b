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

Which one is fastest depends on the CPU and on the layer's shape, so it is measured, not guessed:
:func:`choose_plan` times the candidates per distinct layer shape (once; cached on disk per CPU
model and jax version). :func:`resolve` turns ``precision="auto"`` into a plan: float32 XLA
convolutions everywhere unless the platform is a CPU with bf16 matrix units
(:func:`cpu_has_bf16_units`).
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnst.model.layers import LAYERS

FORMS = ("xla", "taps9", "row3", "im2col", "pertap")
DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}
FP32 = "xla:fp32"
# What the per-layer search tries: float32 XLA and the accurate bf16x3 forms (see above). The
# float32 dot forms never beat XLA's float32 convolution where measured (scripts/bench.py --layers).
CANDIDATES = ("xla:fp32", "xla:bf16x3", "taps9:bf16x3", "row3:bf16x3", "im2col:bf16x3")
_DN = ("NHWC", "HWIO", "NHWC")


def parse(spec: str) -> tuple[str, str]:
    """``"row3:bf16"`` -> ("row3", "bf16"); ValueError naming the bad part otherwise."""
    form, _, dt = spec.partition(":")
    if form not in FORMS or dt not in (*DTYPES, "bf16x3"):
        raise ValueError(
            f"unknown convolution {spec!r}; expected FORM:DTYPE with FORM one of "
            f"{', '.join(FORMS)} and DTYPE fp32, bf16 or bf16x3"
        )
    return form, dt


def _pad(x):
    return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def _dot(a, b):
    return jnp.dot(a, b, preferred_element_type=jnp.float32)


def _split3(x, kernel):
    """bf16x3: x ~ xh + xl and k ~ kh + kl in bfloat16; xh kh + xh kl + xl kh, the three
    products that matter, as ONE convolution over three times the channels (error ~2^-16, not
    bf16's 2^-8)."""
    xh = x.astype(jnp.bfloat16)
    xl = (x - xh.astype(x.dtype)).astype(jnp.bfloat16)
    kh = kernel.astype(jnp.bfloat16)
    kl = (kernel - kh.astype(kernel.dtype)).astype(jnp.bfloat16)
    return jnp.concatenate([xh, xh, xl], axis=-1), jnp.concatenate([kh, kl, kh], axis=2)


def conv(x: jax.Array, kernel: jax.Array, spec: str = FP32) -> jax.Array:
    """SAME 3x3 convolution of NHWC ``x`` with HWIO ``kernel`` in formulation ``spec``; float32
    out. ``"xla:fp32"`` is exactly the float32 ``lax`` convolution."""
    form, dt = parse(spec)
    if dt == "bf16x3":
        x, k = _split3(x.astype(jnp.float32), kernel.astype(jnp.float32))
    else:
        x, k = x.astype(DTYPES[dt]), kernel.astype(DTYPES[dt])
    n, h, w, c = x.shape
    o = k.shape[-1]
    if form == "xla":
        return lax.conv_general_dilated(
            x, k, (1, 1), "SAME", dimension_numbers=_DN, preferred_element_type=jnp.float32
        )
    xp = _pad(x)
    if form == "taps9":
        y = _dot(xp, jnp.transpose(k, (2, 0, 1, 3)).reshape(c, 9 * o)).reshape(
            n, h + 2, w + 2, 9, o
        )
        return sum(y[:, a : a + h, b : b + w, 3 * a + b] for a in range(3) for b in range(3))
    if form == "row3":
        rows = jnp.concatenate([xp[:, :, b : b + w] for b in range(3)], axis=-1)
        y = _dot(rows, jnp.transpose(k, (1, 2, 0, 3)).reshape(3 * c, 3 * o))
        y = y.reshape(n, h + 2, w, 3, o)
        return sum(y[:, a : a + h, :, a] for a in range(3))
    if form == "im2col":
        cols = [xp[:, a : a + h, b : b + w] for a in range(3) for b in range(3)]
        return _dot(jnp.concatenate(cols, axis=-1), k.reshape(9 * c, o))
    return sum(_dot(xp[:, a : a + h, b : b + w], k[a, b]) for a in range(3) for b in range(3))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def conv3x3(x, kernel, kernel_t, forward: str = FP32, backward: str = FP32):
    """Like :func:`jaxnst.model.vgg.conv3x3`, with the forward and input-gradient convolutions in
    the formulations ``forward`` and ``backward``. ``kernel_t`` is
    ``vgg.backward_kernel(kernel)``."""
    return conv(x, kernel, forward)


def _fwd(x, kernel, kernel_t, forward, backward):
    return conv(x, kernel, forward), (x, kernel, kernel_t)


def _bwd(forward, backward, res, g):
    x, kernel, kernel_t = res
    dx = conv(g, kernel_t, backward).astype(x.dtype)
    _, vjp_k = jax.vjp(lambda k: conv(x, k, FP32), kernel)  # exact; dead code for image grads
    (dk,) = vjp_k(g.astype(jnp.float32))
    return dx, dk.astype(kernel.dtype), jnp.zeros_like(kernel_t)


conv3x3.defvjp(_fwd, _bwd)


# ---------------------------------------------------------------------------------------------
# Which CPU, and which formulation per layer


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown cpu"


def cpu_has_bf16_units() -> bool:
    """True on an x86 CPU with AMX-BF16 or AVX512-BF16, or an Arm CPU with BF16 dot
    instructions. ``JAXNST_CPU_BF16=1``/``0`` overrides the detection (tests, experiments)."""
    forced = os.environ.get("JAXNST_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16", "bf16"})


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


_told = False


def _cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxnst", "conv_plans.json")


def fastest(shape: tuple[int, int, int, int], candidates: Sequence[str] = CANDIDATES) -> str:
    """The fastest candidate for one convolution shape on this machine (measured once, then read
    from the cache, keyed by CPU model, jax version and shape)."""
    key = f"{cpu_model()}|jax {jax.__version__}|{'x'.join(map(str, shape))}|{','.join(candidates)}"
    path = _cache_path()
    try:
        with open(path) as f:
            cache = json.load(f)
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        global _told
        if not _told:
            print(
                f"jaxnst: precision auto: timing the convolution forms for this CPU (once per "
                f"layer shape; cached in {path})",
                file=sys.stderr,
            )
            _told = True
        cache[key] = min(candidates, key=lambda s: time_conv(shape, s))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(cache, f, indent=1)
            os.replace(tmp, path)
        except OSError:
            pass
    return str(cache[key])


def choose_plan(
    height: int,
    width: int,
    layers: Sequence[str],
    channels: Sequence[int],
    candidates: Sequence[str] = CANDIDATES,
) -> tuple[tuple[str, str], ...]:
    """Per convolution up to the deepest of ``layers``: (forward, input-gradient) formulation,
    each the fastest of ``candidates`` measured on this machine at this layer's shape (timed at
    most at :data:`TIMED_PIXELS`; the candidates are those that fit at the real shape)."""
    th, tw = timed_size(height, width)
    timed = layer_shapes(th, tw, layers, channels).values()
    plan = []
    for (h, w, c, o), (sh, sw, _, _) in zip(
        layer_shapes(height, width, layers, channels).values(), timed
    ):
        fwd, bwd = (h, w, c, o), (h, w, o, c)
        plan.append(
            (
                fastest((sh, sw, c, o), _fitting(fwd, candidates)),
                fastest((sh, sw, o, c), _fitting(bwd, candidates)),
            )
        )
    return tuple(plan)


# Formulations are timed at most at this many pixels, the image scaled down at its aspect: a
# convolution's time grows with its pixels alike for every form, and the choices measured at
# 384x512, 681x1024, 768x1024 and 1536x2048 px on our Xeon were the same (xla:fp32 for the
# full-size layers), but timing them at 2048x1536 took over 4 minutes of a first run (issue 22);
# a large image now reuses the timings of a 512 px one.
TIMED_PIXELS = 512 * 384


def timed_size(height: int, width: int) -> tuple[int, int]:
    """The image size whose layer shapes are timed for a (height, width) image."""
    if height * width <= TIMED_PIXELS:
        return height, width
    s = math.sqrt(TIMED_PIXELS / (height * width))
    return max(1, round(height * s)), max(1, round(width * s))


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
    precision: str, height: int, width: int, layers: Sequence[str], channels: Sequence[int]
) -> tuple[str, tuple[tuple[str, str], ...] | None]:
    """``precision`` as given -> (the VGG module's precision, its per-layer plan or None).

    "fp32" and "bf16" pass through unchanged. "auto" is float32 XLA convolutions (no plan) except
    on a CPU with bf16 matrix units, where each layer gets the fastest measured formulation; a
    plan that is float32 XLA everywhere is returned as None, so the program is exactly fp32's."""
    if precision != "auto":
        return precision, None
    if jax.default_backend() != "cpu" or not cpu_has_bf16_units():
        return "fp32", None
    plan = choose_plan(height, width, layers, channels)
    if all(p == (FP32, FP32) for p in plan):
        return "fp32", None
    return "fp32", plan
