"""Ctrl-C inside a compiled program (issue 22).

Python handles a signal only between bytecodes, and a thread waiting for an XLA program is inside
one call: an L-BFGS chunk at print size (minutes per evaluation on a CPU) answered Ctrl-C only
when it ended. So the host waits in short sleeps (:func:`wait`), and on Ctrl-C sets a flag that
the running program reads through a host callback (:func:`requested`): once per loop iteration
in :func:`jaxnst.optim.optimize.run_chunk` and once per tile in :mod:`jaxnst.loss.tiled`, where the
remaining tiles are then skipped. The program winds down within one evaluation (one tile when
tiled); its result is discarded and the last completed chunk is what a checkpoint keeps.

A base module: it imports nothing of jaxnst, so that every layer may read the flag.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_STOP = threading.Event()
POLL_SECONDS = 0.05


def _is_set() -> np.bool_:
    return np.bool_(_STOP.is_set())


def requested() -> jax.Array:
    """Inside a compiled program: whether Ctrl-C asked the program to wind down (a host
    callback returning a bool scalar; unbatched under ``vmap``, so a ``lax.cond`` on it stays a
    branch)."""
    shape = jax.ShapeDtypeStruct((), jnp.bool_)
    return jax.experimental.io_callback(_is_set, shape, ordered=False)


WIND_DOWN_SECONDS = 5.0
_in_flight = threading.Event()


def _ready(arrays: list) -> bool:
    return all(a.is_ready() for a in arrays)


def wait(tree: Any) -> Any:
    """Block until every array in ``tree`` is ready, answering Ctrl-C at once: the flag is set,
    the program winds down (its result is then not to be used) for up to
    :data:`WIND_DOWN_SECONDS` (an untiled evaluation reads the flag only when it ends: then the
    program is left running, see :func:`in_flight`), the flag is cleared and KeyboardInterrupt is
    raised again."""
    arrays = [a for a in jax.tree.leaves(tree) if isinstance(a, jax.Array)]
    try:
        while not _ready(arrays):
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        _STOP.set()
        deadline = time.monotonic() + WIND_DOWN_SECONDS
        while not _ready(arrays) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if _ready(arrays):
            _STOP.clear()
        else:
            _in_flight.set()  # (the flag stays set: the program stops at its next check)
        raise
    return tree


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
    """A program interrupted by Ctrl-C was still running when :func:`wait` gave up on it: the
    process cannot exit normally before it ends (Python waits for it), so a front end that has
    saved its work exits with :func:`os._exit`."""
    return _in_flight.is_set()
