"""Compile-time accounting: how long this process spent tracing, lowering and compiling XLA
programs, and how many programs came from JAX's persistent compilation cache.

Listeners on :mod:`jax.monitoring` events add to process-wide totals; a stage reads
:func:`compile_stats` before and after its work and reports the difference (``Result``'s
``compile_seconds`` and ``compile_cache_hits``). :func:`program_log` lists the programs compiled
while a block runs, one by one (``jaxnst warmup`` prints them).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compile_lock = threading.Lock()
_compile_totals = {"seconds": 0.0, "compiles": 0, "cache_hits": 0}


_logs: list[list[Program]] = []  # the open program_log blocks
_hit = threading.local()  # a cache hit is counted on the compiling thread just before its end


class Program(NamedTuple):
    """One XLA compilation: the jitted function's name (``jit(run_chunk)``), the seconds XLA took
    to compile it or to load it, and whether it came from the persistent cache."""

    name: str
    seconds: float
    cached: bool


def _on_event(event: str, duration_secs: float, **kw: Any) -> None:
    if event in _COMPILE_EVENTS:
        with _compile_lock:
            _compile_totals["seconds"] += duration_secs
            if event == _COMPILE_EVENTS[-1]:
                _compile_totals["compiles"] += 1
                cached, _hit.flag = getattr(_hit, "flag", False), False
                for log in _logs:
                    log.append(Program(str(kw.get("fun_name", "?")), duration_secs, cached))


def _on_count(event: str, **_: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":  # a program loaded from the persistent cache
        _hit.flag = True
        with _compile_lock:
            _compile_totals["cache_hits"] += 1


@contextlib.contextmanager
def program_log() -> Iterator[list[Program]]:
    """``with program_log() as programs:`` collects a :class:`Program` for every XLA compilation
    (or persistent-cache load) in this process, any thread, while the block runs."""
    log: list[Program] = []
    with _compile_lock:
        _logs.append(log)
    try:
        yield log
    finally:
        with _compile_lock:
            _logs.remove(log)


jax.monitoring.register_event_duration_secs_listener(_on_event)
jax.monitoring.register_event_listener(_on_count)


def compile_stats() -> dict[str, float]:
    """Process-wide totals: seconds spent compiling, number of XLA compilations (a program loaded
    from the persistent cache counts as one, with its loading time), and persistent-cache hits."""
    with _compile_lock:
        return dict(_compile_totals)


def record_load(name: str, seconds: float) -> None:
    """Count a program loaded from jaxnst's executable store (:mod:`jaxnst.optim.stored`) as JAX
    counts one from its persistent cache: a compilation of ``seconds`` and a cache hit."""
    with _compile_lock:
        _compile_totals["seconds"] += seconds
        _compile_totals["compiles"] += 1
        _compile_totals["cache_hits"] += 1
        for log in _logs:
            log.append(Program(name, seconds, True))


# Each XLA:CPU executable maps its code into memory on its own. A process that compiles for hours
# (a studio server, a test worker running hundreds of tests) reaches the kernel's
# vm.max_map_count (65530 by default), and its next compilation dies inside LLVM, a segfault or an
# abort with no Python error (CI's red runs on 768adea and 739f7db). Past MAX_MAPS such a process
# drops jit's caches (:func:`release_if_crowded`).
MAX_MAPS = 40000


def memory_maps() -> int:
    """How many memory maps this process holds (0 where there is no /proc/self/maps)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def release_if_crowded(limit: int | None = None) -> bool:
    """Past ``limit`` memory maps (default :data:`MAX_MAPS`), drop jit's caches, which unmaps the
    executables nothing else holds (later calls compile theirs again). Whether it did."""
    if memory_maps() <= (MAX_MAPS if limit is None else limit):
        return False
    import gc

    jax.clear_caches()
    gc.collect()
    return True
