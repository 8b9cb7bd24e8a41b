"""Setting up the runtime for a command-line run, in one place and before anything starts the
XLA backend: jax.distributed for many hosts, and JAX's persistent compilation cache."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class RuntimeSetupError(Exception):
    """The processes could not be started (one line; the CLI maps it to exit code 2)."""


def runtime_message(e: Exception, w: int, h: int) -> str | None:
    """A clear message for errors raised from inside JAX/XLA at a (w, h) px run, or None for
    anything else (the still-image and video commands' exit code 4)."""
    text = " ".join(str(e).split())
    name = type(e).__name__
    if "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or isinstance(e, MemoryError):
        return (
            f"out of memory at {w}x{h} px ({text[:160]}); try a smaller --size or fewer "
            "sweep values"
        )
    if name in ("XlaRuntimeError", "JaxRuntimeError") or "UNIMPLEMENTED" in text:
        return f"the device failed ({text[:200]}); try a smaller --size or another precision"
    return None


def exit_if_in_flight(code: int = 130) -> None:
    """After Ctrl-C, an untiled evaluation may still be running (it does not read the stop
    flag, see jaxnst._interrupt); Python would wait for it at exit. What there was to write is
    written: leave now with ``code`` (130: the commands' EXIT_INTERRUPTED)."""
    from jaxnst import _interrupt

    if _interrupt.in_flight():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def setup(args: argparse.Namespace) -> None:
    """Start jax.distributed when asked (--distributed, --coordinator) and turn on the compile
    cache (--compile-cache, --no-compile-cache, $JAXNST_COMPILE_CACHE)."""
    if getattr(args, "distributed", False) or getattr(args, "coordinator", None):
        init_distributed(args)  # before anything can start the XLA backend
    enable_compile_cache(compile_cache_dir(args), args.quiet)


def init_distributed(args: argparse.Namespace) -> None:
    import jax

    # CPU processes exchange results through gloo collectives; GPUs/TPUs use their own.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    except (RuntimeError, ValueError) as e:
        raise RuntimeSetupError(
            "--distributed: could not initialise the processes ("
            + " ".join(str(e).split())[:200]
            + ")"
        ) from None


def compile_cache_dir(args: argparse.Namespace) -> Path | None:
    """Where CLI runs keep compiled programs: --compile-cache, $JAXNST_COMPILE_CACHE (empty:
    off), else the per-user cache directory. None when switched off."""
    if getattr(args, "no_compile_cache", False):
        return None
    if getattr(args, "compile_cache", None):
        return Path(args.compile_cache).expanduser()
    env = os.environ.get("JAXNST_COMPILE_CACHE")
    if env is not None:
        return Path(env).expanduser() if env.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxnst" / "xla"


def enable_compile_cache(path: Path | None, quiet: bool) -> None:
    """Turn on JAX's persistent compilation cache (before the first compilation). The directory is
    private to the user (0700): whoever can write to it can make this process run code. A cache
    that cannot be used only costs compile time, so failure is a warning, not an error."""
    if path is None:
        return
    import jax

    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.access(path, os.W_OK):
            raise PermissionError("not writable")
    except OSError as e:
        if not quiet:
            print(
                f"jaxnst: compile cache {path} unusable ({e.strerror or e}); compiling without it",
                file=sys.stderr,
            )
        return
    jax.config.update("jax_compilation_cache_dir", str(path))
    # jaxnst's own programs (descent, targets) also go in a store keyed before tracing, which a
    # warm run loads without tracing or lowering them (jaxnst.optim.stored).
    from jaxnst.optim import stored

    stored.enable(path / "jaxnst-programs")
    # Keep every program: besides the descent loop (seconds) a run compiles ~70 small helpers
    # (resizing, targets, ...) that together took as long again; cached, a 32 px run's
    # compilation went from 10.1 s to 2.0 s (the rest is tracing and lowering).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    try:
        jax.config.update("jax_persistent_cache_enable_xla_caches", XLA_CACHES)
    except (AttributeError, KeyError, ValueError):  # a jax without the option
        pass


# XLA's own caches, kept in JAX's cache directory (jax matches the value by substring):
# "xla_gpu_per_fusion_autotune_cache_dir" keeps the GPU autotuner's per-fusion results
# (convolution algorithms, GEMM tilings), so a program that misses the executable cache but holds
# fusions tuned before (the same convolutions in an edited loop, a sweep, a video batch) skips
# their autotuning; "all" adds "xla_gpu_kernel_cache_file", which also switches on XLA's parallel
# LLVM module compilation, a change to the compiled program not measured here; "" keeps neither.
# Set explicitly: jax 0.10's default is the autotune cache, marked in its source to become "all".
# Neither applies on the CPU. (Nor does the CPU's instruction set need a key of ours: JAX hashes
# the device topology, and XLA:CPU's fingerprint of it includes the target machine's features;
# checked: XLA_FLAGS=--xla_cpu_max_isa=AVX2 changes it.)
XLA_CACHES = "xla_gpu_per_fusion_autotune_cache_dir"
