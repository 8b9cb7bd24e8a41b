"""How the host drives the compiled chunks: their length, and what a run has produced so far.

A chunk is one call of the compiled descent program (:func:`jaxnst.optim.optimize.run_chunk`);
the host sees progress, Ctrl-C, a studio's Stop and the wall-clock budget only between chunks (a
tiled program also reads Ctrl-C's flag inside, see :mod:`jaxnst._interrupt`). Chunks therefore
aim at about :data:`CHUNK_SECONDS` of work (issue 22): at 1024 px on a CPU an L-BFGS step takes
seconds, and 50 of them (``Options.chunk``) were minutes between two looks. The length is a
runtime value of the same program, so nothing recompiles; a short run on a fast device still
takes ``chunk`` steps per call (no host round trip per step), and no chunk crosses a multiple of
``chunk``, so the steps a front end asked to see (``--save-every``, ``--checkpoint-every``, the
studio's previews) remain chunk ends.
"""

from __future__ import annotations

from typing import Any, NamedTuple

CHUNK_SECONDS = 5.0  # the work one chunk aims at (seconds of the host's measured speed)


class Progress(NamedTuple):
    """Everything a run has produced so far: enough to report, checkpoint or resume it."""

    state: Any  # jaxnst.optim.loop.LoopState
    totals: list  # per chunk: (chunk, N) total loss after each step (NaN past the chunk's steps)
    parts: list  # at the start and after each chunk: losses.Parts of (N,) arrays
    paid: int  # evaluations the batch paid for
    on_time: bool = False  # stopped at the wall-clock deadline (the chunk in flight dropped)
    ends: tuple[int, ...] = ()  # the furthest member's step at each entry of ``parts``
    stopped: bool = False  # ended early: a callback returned True, or a Stop cancelled a chunk


class Interrupted(Exception):
    """Ctrl-C arrived; ``progress`` is the last completed chunk (nothing of the one in flight)."""

    def __init__(self, progress: Progress):
        super().__init__("interrupted")
        self.progress = progress


class Pace:
    """The number of steps of the next chunk: about :data:`CHUNK_SECONDS` at the speed measured
    so far (the first evaluation's seconds, then each chunk's seconds per step), at least 1, at
    most ``chunk`` and never past the next multiple of ``chunk``."""

    def __init__(self, chunk: int, seconds_per_step: float | None = None):
        self.chunk, self.per_step = chunk, seconds_per_step

    def steps(self, step: int) -> int:
        room = self.chunk - step % self.chunk
        if not self.per_step or self.per_step <= 0:
            return room
        return max(1, min(room, int(CHUNK_SECONDS / self.per_step)))

    def measured(self, seconds: float, steps: int) -> None:
        if steps > 0 and seconds > 0:
            self.per_step = seconds / steps
