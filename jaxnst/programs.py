"""How the descent programs are compiled: ``jax.jit`` with per-backend compiler options."""

from __future__ import annotations

import functools

import jax

# XLA:CPU compiler options for the descent programs. XLA:CPU hands convolutions and dots to
# YNNPACK "library fusions" by default; with those off, convolutions run on XLA's own (Eigen) path,
# which measured ~20 % faster per evaluation than YNNPACK on our CPU machine, alternating with
# PyTorch in the same runs (issue 5; ``scripts/bench.py --xla-cpu-ynn`` times both in one process).
# Other backends are compiled without options.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def _program(fun):
    """``jax.jit`` with ``config`` static; on the CPU backend, compiled with
    :data:`CPU_COMPILER_OPTIONS` unless ``config.xla_cpu_ynn``. Exposes ``.lower`` like a jitted
    function."""
    plain = jax.jit(fun, static_argnames="config")
    tuned = jax.jit(fun, static_argnames="config", compiler_options=CPU_COMPILER_OPTIONS)

    def pick(args, kw):
        config = kw["config"] if "config" in kw else args[4]
        nested = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kw)))
        # (Inside a caller's jit or eval_shape, compiler options are the caller's to set.)
        if nested or config.xla_cpu_ynn or jax.default_backend() != "cpu":
            return plain
        return tuned

    @functools.wraps(fun)
    def call(*args, **kw):
        return pick(args, kw)(*args, **kw)

    call.lower = lambda *args, **kw: pick(args, kw).lower(*args, **kw)
    call._cache_size = lambda: plain._cache_size() + tuned._cache_size()
    return call
