"""The host side of training (:func:`jaxnst.feedforward.train.train_styles`): calls the compiled
chunk on batches from the background loader, sharded over every device, and between chunks keeps
the loss history, checks for divergence, writes checkpoints, reports progress and watches the
time budget. The chunk's step count is a runtime value: the budget's last, shorter chunk runs the
same program."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import serialization
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnst.feedforward import data
from jaxnst.feedforward import steps as prog
from jaxnst.feedforward.model_file import Model, save
from jaxnst.feedforward.network import NetConfig


class TrainDiverged(RuntimeError):
    """The loss became NaN or infinite; ``model`` is the last finite one (also written)."""

    def __init__(self, msg: str, model: Model):
        super().__init__(msg)
        self.model = model


class Progress(NamedTuple):
    """What a callback sees after each chunk."""

    step: int
    steps: int
    loss: float  # the last chunk's mean batch loss
    seconds: float  # since the start (compilation included)
    images_per_second: float  # over the chunks after the first (compiled)


class Setup(NamedTuple):
    """Everything a training run needs, prepared (see ``train._setup``)."""

    cfg: prog.TrainConfig
    net: NetConfig
    meta: dict
    photos: data.Photos
    check: np.ndarray | None  # the held-out photos
    grams: dict
    weights: Any
    variables: dict
    state: prog.TrainState
    history: list
    total: int
    lr: np.float32  # the peak step size
    schedule: str = "constant"  # its schedule over the run (steps.rates)


def mesh() -> tuple[NamedSharding, NamedSharding]:
    """(the batch's sharding: split along B over every device, replicated)."""
    m = Mesh(np.asarray(jax.devices()), ("data",))
    return NamedSharding(m, PartitionSpec(None, "data")), NamedSharding(m, PartitionSpec())


def place(chunk: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A chunk (N, B, ...) on the devices, split along B; with several processes each gives its
    own slice of the same deterministic batch."""
    p, n = jax.process_index(), jax.process_count()
    if n == 1:
        return jax.device_put(chunk, sharding)
    b = chunk.shape[1] // n
    return jax.make_array_from_process_local_data(sharding, chunk[:, p * b : (p + 1) * b])


def model_of(
    state: prog.TrainState, net: NetConfig, meta: dict, history: list, average: float = 0.0
) -> Model:
    """The model of a training state: its parameters, or their moving average (``average``: the
    decay, see :func:`~jaxnst.feedforward.steps.averaged`), and the state to resume from."""
    host = jax.device_get(state)
    train = {"state": serialization.to_state_dict(host), "history": np.asarray(history, np.float64)}
    return Model(prog.averaged(host, average), net, {**meta, "steps": int(host.step)}, train)


class Loop:
    """One training run's loop; ``state`` is always the last completed chunk's (what Ctrl-C
    saves)."""

    def __init__(self, s: Setup, chunk: int, batch: int, max_seconds: float | None, t0: float,
                 checkpoint: Any, every: int, callback: Callable | None):  # fmt: skip
        self.s, self.chunk, self.batch, self.max_seconds, self.t0 = s, chunk, batch, max_seconds, t0
        self.checkpoint, self.every, self.callback = checkpoint, every, callback
        self.sharding, replicated = mesh()
        self.state = jax.device_put(s.state, replicated)
        self.start = self.done = int(s.state.step)
        self.images, self.seconds, self.waited = 0, 0.0, 0.0
        self.stopped: str | None = None

    def model(self, state: prog.TrainState | None = None) -> Model:
        return model_of(self.state if state is None else state, self.s.net, self.s.meta,
                        self.s.history, self.s.cfg.average)  # fmt: skip

    def rate(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def _count(self) -> int:
        """Steps in the next chunk: 0 when the time budget is spent (the first always runs)."""
        count = min(self.chunk, self.s.total - self.done)
        if self.max_seconds is None or self.done == self.start:
            return count
        left = self.max_seconds - (time.perf_counter() - self.t0)
        per = self.seconds / self.images * self.batch if self.images else None
        if left <= 0 or (per and left < per):
            self.stopped = "time"
            return 0
        return max(1, min(count, int(left / per))) if per else count

    def run(self) -> None:
        loader = data.Prefetcher(self.s.photos, self.start, self.chunk)
        try:
            while self.done < self.s.total and (count := self._count()):
                self._chunk(place(loader.get(), self.sharding), count)
        finally:
            loader.close()
            self.waited = loader.waited

    def _chunk(self, batches: jax.Array, count: int) -> None:
        s, t = self.s, time.perf_counter()
        spent = (t - self.t0) / self.max_seconds if self.max_seconds else 0.0
        lr = prog.rates(float(s.lr), s.schedule, self.done, batches.shape[0], s.total, spent)
        new, hist = prog.run_chunk(self.state, batches, np.int32(count), s.variables, s.grams,
                                     s.weights, lr, config=s.cfg)  # fmt: skip
        hist = np.asarray(hist)[:count]
        if not np.all(np.isfinite(hist)):
            bad = self.done + int(np.argmax(~np.isfinite(hist)))
            model = self.model()
            if self.checkpoint is not None:
                save(self.checkpoint, model)
            raise TrainDiverged(
                f"the loss became {hist[~np.isfinite(hist)][0]} at step {bad}; try a smaller "
                "learning rate (the last finite model is kept)",
                model,
            )
        if self.done > self.start:  # the first chunk compiles: not a speed sample
            self.images, self.seconds = (
                self.images + count * self.batch,
                self.seconds + (time.perf_counter() - t),
            )
        self.state, self.done = new, self.done + count
        s.history.extend([self.done - count + i, float(v)] for i, v in enumerate(hist))
        if (
            self.checkpoint is not None
            and self.done // self.every > (self.done - count) // self.every
        ):
            save(self.checkpoint, self.model())
        if self.callback is not None:
            report = Progress(self.done, s.total, float(np.mean(hist)),
                              time.perf_counter() - self.t0, self.rate())  # fmt: skip
            self.callback(report, functools.partial(self.model, new))
