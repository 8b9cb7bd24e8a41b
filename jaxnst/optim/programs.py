"""How the descent programs are compiled: ``jax.jit`` with per-backend compiler options, and
ahead of time in a background thread (:meth:`precompile`) while another program runs."""

from __future__ import annotations

import concurrent.futures
import functools
import inspect
from typing import Any

import jax
import numpy as np

from jaxnst.optim import stored
from jaxnst.optim.compilation import record_load

# XLA:CPU compiler options for the descent programs. XLA:CPU hands convolutions and dots to
# YNNPACK "library fusions" by default; with those off, convolutions run on XLA's own (Eigen) path,
# which measured ~20 % faster per evaluation than YNNPACK on our CPU machine, alternating with
# PyTorch in the same runs (issue 5; ``scripts/bench.py --xla-cpu-ynn`` times both in one process).
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
# XLA:GPU options for the descent programs: none until scripts/compile_matrix.py has measured them
# on a GPU (autotuning levels, Triton GEMM; compile seconds against seconds per evaluation).
GPU_COMPILER_OPTIONS: dict[str, Any] = {}

# One background compiler: XLA compiles a program on one thread, and two at once would only
# compete with each other and with the running program for the same cores.
_AHEAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxnst-compile")


def _signature(leaf: Any) -> tuple:
    """What selects a compiled program for an argument: shape, dtype, weak type."""
    weak = getattr(leaf, "weak_type", isinstance(leaf, (int, float, bool)))
    dtype = leaf.dtype if hasattr(leaf, "dtype") else np.result_type(leaf)
    return tuple(np.shape(leaf)), str(dtype), bool(weak)


def _ready(ahead: dict, k: Any) -> Any:
    """The executable compiled ahead for key ``k`` (waiting for it), or None; a failed
    compilation is forgotten, so the call compiles on the spot and reports its error there."""
    fut = ahead.get(k)
    if fut is None:
        return None
    try:
        return fut.result()
    except Exception:  # noqa: BLE001
        ahead.pop(k, None)
        return None


def _now(build, args, kw) -> concurrent.futures.Future:
    """``build(args, kw)`` run on this thread, as a done future. A failure leaves None, so the
    calls with these shapes compile as usual, through jit (which reports any error), and never
    try the store again."""
    f: concurrent.futures.Future = concurrent.futures.Future()
    try:
        f.set_result(build(args, kw))
    except Exception:  # noqa: BLE001
        f.set_result(None)
    return f


def _compile(fun, fn, opts, nested, args, kw) -> Any:
    """Lower and compile ``fn`` (``fun`` jitted with compiler options ``opts``) for these
    arguments; through the executable store when it is on (:mod:`stored`): loaded, or compiled
    past JAX's cache and kept."""
    sk = None
    if not nested and stored.directory() is not None:
        leaves, tree = jax.tree.flatten((args, {k: v for k, v in kw.items() if k != "config"}))
        sk = stored.key(f"{fun.__module__}.{fun.__qualname__}", opts, tree, leaves, kw["config"])
    if sk is None:
        return fn.lower(*args, **kw).compile()
    compiled, seconds = stored.timed_load(sk)
    if compiled is not None:
        record_load(f"jit({fun.__name__})", seconds)
        return compiled
    return stored.compile_fresh(lambda: fn.lower(*args, **kw).compile(), sk)


def _program(fun):
    """``jax.jit`` with ``config`` static; on the CPU backend compiled with
    :data:`CPU_COMPILER_OPTIONS` unless ``config.xla_cpu_ynn``, on GPUs with
    :data:`GPU_COMPILER_OPTIONS`. Exposes ``.lower`` like a jitted function, and
    ``.precompile(*args)`` (arrays or ``jax.ShapeDtypeStruct``s): compile for those shapes in a
    background thread; a later call with matching arguments runs that executable (waiting for it
    if need be) instead of compiling on the spot."""
    names = list(inspect.signature(fun).parameters)
    at = names.index("config")
    plain = jax.jit(fun, static_argnames="config")
    options = {
        "cpu": CPU_COMPILER_OPTIONS,
        "gpu": GPU_COMPILER_OPTIONS,
        "cuda": GPU_COMPILER_OPTIONS,
    }
    tuned = {
        b: jax.jit(fun, static_argnames="config", compiler_options=o)
        for b, o in options.items()
        if o
    }
    ahead: dict[Any, concurrent.futures.Future] = {}

    def normal(args, kw):  # config by keyword, so compiled executables can be called without it
        if len(args) > at:
            kw = {**kw, "config": args[at]}
            kw |= {names[i]: a for i, a in enumerate(args[at + 1 :], at + 1)}
            args = args[:at]
        return args, kw

    def choice(args, kw):  # (the jitted function, its compiler options, called inside a trace)
        config = kw["config"]
        nested = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kw)))
        # (Inside a caller's jit or eval_shape, compiler options are the caller's to set.)
        backend = jax.default_backend()
        if nested or (backend == "cpu" and config.xla_cpu_ynn) or backend not in tuned:
            return plain, None, nested
        return tuned[backend], options[backend], nested

    def build(args, kw):
        return _compile(fun, *choice(args, kw), args, kw)

    def key(args, kw):
        dyn = (args, {k: v for k, v in kw.items() if k != "config"})
        leaves, tree = jax.tree.flatten(dyn)
        return tree, tuple(_signature(x) for x in leaves), kw["config"]

    @functools.wraps(fun)
    def call(*args, **kw):
        args, kw = normal(args, kw)
        k = key(args, kw)
        if k not in ahead and stored.directory() is not None and not choice(args, kw)[2]:
            ahead[k] = _now(build, args, kw)  # a stored program skips tracing and lowering
        compiled = _ready(ahead, k) if ahead else None
        if compiled is not None:
            try:
                return compiled(*args, **{k: v for k, v in kw.items() if k != "config"})
            except (TypeError, ValueError):  # e.g. other shardings: compile as usual, from now on
                ahead[k] = _now(lambda *_: None, args, kw)
        return choice(args, kw)[0](*args, **kw)

    def precompile(*args, **kw) -> concurrent.futures.Future:
        args, kw = normal(args, kw)
        k = key(args, kw)
        if k not in ahead:
            ahead[k] = _AHEAD.submit(lambda: build(args, kw))
        return ahead[k]

    def lower(*args, **kw):
        args, kw = normal(args, kw)  # (config and what follows it by keyword)
        return choice(args, kw)[0].lower(*args, **kw)

    call.lower = lower
    call.precompile = precompile
    call._jit_cache_size = lambda: (
        plain._cache_size() + sum(j._cache_size() for j in tuned.values())
    )
    call._cache_size = lambda: call._jit_cache_size() + len(ahead)
    return call
