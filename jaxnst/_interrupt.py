"""Ctrl-C inside a compiled program (issue 22).

Python handles a signal only between bytecodes, and a thread waiting for an XLA program is inside
one call: an L-BFGS chunk at print size (minutes per evaluation on a CPU) answered Ctrl-C only
when it ended (on a CPU the dispatch call itself can run the whole program). So programs are
called on a runner thread and waited for in short sleeps (:func:`run`). A tiled program also
reads a flag through a host callback (:func:`requested`), after each evaluation in
:func:`jaxnst.optim.optimize.run_chunk` and before each tile in :mod:`jaxnst.loss.tiled`: on
Ctrl-C the flag is set, the remaining tiles are skipped and the program ends within a tile; its
result is discarded and the last completed chunk is what a checkpoint keeps. Untiled programs do
not read it (a program with a host callback never enters JAX's persistent compile cache): Ctrl-C
leaves them running (:func:`in_flight`) and the CLI exits without waiting for them. The same
callback reports tiles to a progress bar (:func:`listen`) and the flag ends a tiled chunk at a
deadline (:func:`alarm`).

A base module: it imports nothing of jaxnst, so that every layer may read the flag.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_STOP = threading.Event()
POLL_SECONDS = 0.05


_listeners: list[Callable[[int, int, int], None]] = []
_tiles: dict[int, list[float]] = {}  # pass -> start times of its tiles, this evaluation and before


def _is_set(*tile: Any) -> np.bool_:
    if tile:
        _tile_started(*(int(x) for x in tile))
    return np.bool_(_STOP.is_set())


def requested(*tile: jax.Array) -> jax.Array:
    """Inside a compiled program: whether Ctrl-C asked the program to wind down (a host
    callback returning a bool scalar; unbatched under ``vmap``, so a ``lax.cond`` on it stays a
    branch). ``tile``: (pass, index, count) of the tile about to start, for :func:`listen`."""
    shape = jax.ShapeDtypeStruct((), jnp.bool_)
    return jax.experimental.io_callback(_is_set, shape, *tile, ordered=False)


def _tile_started(pass_no: int, index: int, count: int) -> None:
    _tiles.setdefault(pass_no, []).append(time.perf_counter())
    for f in list(_listeners):
        f(pass_no, index, count)


@contextlib.contextmanager
def listen(f: Callable[[int, int, int], None]) -> Iterator[None]:
    """While the block runs, ``f(pass, index, count)`` hears each tile of a tiled evaluation
    start (pass 1: the Grams, pass 2: the gradient), on a runtime thread."""
    _listeners.append(f)
    try:
        yield
    finally:
        _listeners.remove(f)


def tile_seconds() -> dict[str, float]:
    """Mean seconds per tile of each pass so far in this process (between consecutive tile
    starts of a pass; empty when nothing was tiled)."""
    out = {}
    for p, starts in sorted(_tiles.items()):
        gaps = np.diff(starts)
        gaps = gaps[gaps < 10 * np.median(gaps)] if gaps.size else gaps  # (not across passes)
        if gaps.size:
            out[f"pass{p}"] = float(gaps.mean())
    return out


WIND_DOWN_SECONDS = 5.0
_in_flight = threading.Event()


def _ready(arrays: list) -> bool:
    return all(a.is_ready() for a in arrays)


# A CPU program can run inside its dispatch call (measured: a tiled chunk at 4096 px held the
# main thread in ExecuteReplicated.__call__ for minutes), so programs are called on this thread.
_RUNNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxnst-run")


class Cancelled(Exception):
    """The event of :func:`cancel_on` was set while a program ran (a studio job's Stop): the
    program's result is not to be used, as on Ctrl-C."""


_cancel = threading.local()


@contextlib.contextmanager
def cancel_on(event: threading.Event) -> Iterator[None]:
    """While the block runs on this thread, :func:`run` answers ``event`` as it answers Ctrl-C
    (which reaches only the main thread), raising :class:`Cancelled` instead: a worker thread's
    Stop then ends the program in flight, not only the next one."""
    before = getattr(_cancel, "event", None)
    _cancel.event = event
    try:
        yield
    finally:
        _cancel.event = before


def _wait(future: concurrent.futures.Future) -> Any:
    event = getattr(_cancel, "event", None)

    def check() -> None:
        time.sleep(POLL_SECONDS)
        if event is not None and event.is_set():
            raise Cancelled

    while not future.done():
        check()
    out = future.result()
    arrays = [a for a in jax.tree.leaves(out) if isinstance(a, jax.Array)]
    while not _ready(arrays):
        check()
    return out


def run(fn: Callable[..., Any], *args: Any, reads_flag: bool = False) -> Any:
    """``fn(*args)`` (a compiled program's call) on a runner thread, its result waited for in short
    sleeps, answering Ctrl-C at once (and, on a thread inside :func:`cancel_on`, its event). A
    program that ``reads_flag`` is given up to :data:`WIND_DOWN_SECONDS` to wind down (its result
    is then not to be used); one still running after that, or one that does not read the flag, is
    left running (:func:`in_flight`). KeyboardInterrupt (or :class:`Cancelled`) is raised again."""
    future = _RUNNER.submit(fn, *args)
    try:
        return _wait(future)
    except (KeyboardInterrupt, Cancelled):
        if reads_flag:
            _STOP.set()
            deadline = time.monotonic() + WIND_DOWN_SECONDS
            while not _finished(future) and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
            _STOP.clear()
        if not _finished(future):
            _in_flight.set()
        raise


def _finished(future: concurrent.futures.Future) -> bool:
    if not future.done():
        return False
    if future.exception() is not None:
        return True
    return _ready([a for a in jax.tree.leaves(future.result()) if isinstance(a, jax.Array)])


_alarm = threading.Event()


@contextlib.contextmanager
def alarm(deadline: float | None) -> Iterator[None]:
    """While the block runs, raise the flag at ``deadline`` (``time.monotonic()``; None: never),
    so that a program running then winds down as on Ctrl-C (:func:`alarm_rang` says so)."""
    if deadline is None:
        yield
        return

    def ring() -> None:
        _alarm.set()
        _STOP.set()

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), ring)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if _alarm.is_set():
            _alarm.clear()
            _STOP.clear()


def alarm_rang() -> bool:
    """The deadline of :func:`alarm` has passed (programs read the raised flag)."""
    return _alarm.is_set()


def in_flight() -> bool:
    """A program interrupted by Ctrl-C was still running when :func:`run` gave up on it: the
    process cannot exit normally before it ends (Python waits for it), so a front end that has
    saved its work exits with :func:`os._exit`."""
    return _in_flight.is_set()
