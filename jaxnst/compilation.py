"""Compile-time accounting: how long this process spent tracing, lowering and compiling XLA
programs, and how many programs came from JAX's persistent compilation cache.

Listeners on :mod:`jax.monitoring` events add to process-wide totals; a stage reads
:func:`compile_stats` before and after its work and reports the difference (``Result``'s
``compile_seconds`` and ``compile_cache_hits``).
"""

from __future__ import annotations

import threading
from typing import Any

import jax

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compile_lock = threading.Lock()
_compile_totals = {"seconds": 0.0, "compiles": 0, "cache_hits": 0}


def _on_event(event: str, duration_secs: float, **_: Any) -> None:
    if event in _COMPILE_EVENTS:
        with _compile_lock:
            _compile_totals["seconds"] += duration_secs
            if event == _COMPILE_EVENTS[-1]:
                _compile_totals["compiles"] += 1


def _on_count(event: str, **_: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":  # a program loaded from the persistent cache
        with _compile_lock:
            _compile_totals["cache_hits"] += 1


jax.monitoring.register_event_duration_secs_listener(_on_event)
jax.monitoring.register_event_listener(_on_count)


def compile_stats() -> dict[str, float]:
    """Process-wide totals: seconds spent compiling, number of XLA compilations (a program loaded
    from the persistent cache counts as one, with its loading time), and persistent-cache hits."""
    with _compile_lock:
        return dict(_compile_totals)
