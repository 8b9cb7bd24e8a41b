"""Checkpoints of a running descent: save, load, verify, restore. NumPy ``.npz``, never pickled.

A checkpoint holds the float32 image(s) and the whole optimizer state (every leaf of
:class:`jaxnst.optim.optimize.LoopState`: step, evaluation counts, L-BFGS memory or Adam moments),
the loss history so far, and a fingerprint: a SHA-256 of the content and style pixels, every option
that changes the result (all but ``iterations`` and ``chunk``: a run may be resumed to go further),
the seeds (the only randomness; they fix the noise init) and the weights' digest. Resuming with
inputs or options that give another fingerprint is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxnst._atomic import atomic_path

FORMAT = "jaxnst-checkpoint-1"
_NOT_HASHED = ("iterations", "chunk")


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not match this run. One-line message."""


@dataclasses.dataclass
class Checkpoint:
    fingerprint: str
    step: int  # steps taken by the furthest member
    leaves: list[np.ndarray]  # jax.tree.leaves of the LoopState (batched: leading N axis)
    totals: np.ndarray  # (chunks, chunk, N) total loss after each step
    parts: dict[str, np.ndarray]  # field -> (chunks + 1, N)
    paid: int
    ends: tuple[int, ...] = ()  # the furthest step at each entry of parts (chunks may be short)


def fingerprint(content: np.ndarray, style: np.ndarray, options, weights_digest: str) -> str:
    h = hashlib.sha256(FORMAT.encode())
    for name, a in (("content", content), ("style", style)):
        a = np.ascontiguousarray(np.asarray(a, np.float32))
        h.update(f"{name}:{a.shape}\n".encode())
        h.update(a.tobytes())
    opts = {}
    for f in dataclasses.fields(options):
        if f.name in _NOT_HASHED:
            continue
        v = getattr(options, f.name)
        if isinstance(v, np.ndarray) or hasattr(v, "__array__") and not isinstance(v, (str, tuple)):
            a = np.ascontiguousarray(np.asarray(v, np.float32))
            v = {"array": hashlib.sha256(a.tobytes()).hexdigest(), "shape": list(a.shape)}
        elif isinstance(v, tuple):
            v = list(v)
        opts[f.name] = v
    h.update(json.dumps(opts, sort_keys=True, default=str).encode())
    h.update(weights_digest.encode())
    return h.hexdigest()


def save(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write atomically (temporary file in the same directory, then rename)."""
    p = Path(path)
    arrays = {f"leaf_{i:04d}": np.asarray(a) for i, a in enumerate(ckpt.leaves)}
    arrays["totals"] = np.asarray(ckpt.totals, np.float32)
    arrays.update({f"parts_{k}": np.asarray(v, np.float32) for k, v in ckpt.parts.items()})
    meta = {
        "format": FORMAT,
        "fingerprint": ckpt.fingerprint,
        "step": int(ckpt.step),
        "paid": int(ckpt.paid),
        "leaves": len(ckpt.leaves),
        "parts": sorted(ckpt.parts),
        "ends": [int(e) for e in ckpt.ends],
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with atomic_path(p) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    return p


def load(path: str | os.PathLike) -> Checkpoint:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p}: no such file")
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"checkpoint {p}: not a {FORMAT} file")
            leaves = [z[f"leaf_{i:04d}"] for i in range(meta["leaves"])]
            return Checkpoint(
                meta["fingerprint"],
                meta["step"],
                leaves,
                z["totals"],
                {k: z[f"parts_{k}"] for k in meta["parts"]},
                meta["paid"],
                tuple(meta.get("ends", ())),
            )
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"checkpoint {p}: unreadable ({type(e).__name__})") from None


def restore(template, leaves: list[np.ndarray], where: str = "checkpoint"):
    """Put ``leaves`` into the tree structure of ``template`` (shapes and dtypes must match)."""
    import jax

    want, treedef = jax.tree.flatten(template)
    if len(want) != len(leaves):
        raise CheckpointError(f"{where} holds {len(leaves)} arrays, this run needs {len(want)}")
    for i, (w, a) in enumerate(zip(want, leaves)):
        if tuple(w.shape) != tuple(a.shape) or np.dtype(w.dtype) != a.dtype:
            raise CheckpointError(
                f"{where}: array {i} is {a.dtype}{list(a.shape)}, this run "
                f"needs {np.dtype(w.dtype)}{list(w.shape)}"
            )
    # device_put, not jnp.asarray: the latter compiles a small program per leaf shape.
    return jax.tree.unflatten(treedef, [jax.device_put(a) for a in leaves])


# --------------------------------------------------------------------------- glue for the run stage


def fingerprint_problem(
    contents: Any, styles: Sequence[Any], masks: Any, options: Any, weights_digest: str
) -> str:
    """The :func:`fingerprint` of a prepared run: contents (C, H, W, 3) after colour handling,
    every style image and the content masks (flattened together), options and weights."""
    flat = [np.asarray(x).ravel() for x in styles]
    if masks is not None:
        flat.append(np.asarray(masks).ravel())
    return fingerprint(np.asarray(contents), np.concatenate(flat), options, weights_digest)


def snapshot(fp: str, progress: Any, chunk: int, rows: int) -> Checkpoint:
    """A :class:`Checkpoint` of a :class:`jaxnst.optim.optimize.Progress` (copied to the host)."""
    import jax

    st = jax.device_get(progress.state)
    totals = (
        np.stack([np.asarray(t) for t in progress.totals])
        if progress.totals
        else np.zeros((0, chunk, rows), np.float32)
    )
    fields = progress.parts[0]._fields
    parts = {f: np.stack([np.asarray(getattr(p, f)) for p in progress.parts]) for f in fields}
    return Checkpoint(
        fp,
        int(np.max(st.step)),
        [np.asarray(a) for a in jax.tree.leaves(st)],
        totals,
        parts,
        progress.paid,
        tuple(progress.ends),
    )


def resume_progress(
    ckpt: Checkpoint | str | os.PathLike, fp: str, template: Any, sharding: Any = None
) -> Any:
    """The :class:`jaxnst.optim.optimize.Progress` saved in ``ckpt`` (a Checkpoint or a file),
    checked against this run's fingerprint ``fp``; the state takes the structure of ``template`` (a
    LoopState of shapes) and, when given, ``sharding``. CheckpointError when it does not match."""
    import jax

    from jaxnst.loss import losses
    from jaxnst.optim import optimize

    if isinstance(ckpt, (str, os.PathLike)):
        ckpt = load(ckpt)
    if ckpt.fingerprint != fp:
        raise CheckpointError(
            "checkpoint does not match these inputs and options (content, style, weights or "
            "an option other than iterations differs); start without --resume"
        )
    state = restore(template, ckpt.leaves)
    # Committed, as init_state places a fresh state: with uncommitted arguments the chunk program
    # was compiled a second time for the resumed run.
    state = jax.device_put(state, jax.local_devices()[0] if sharding is None else sharding)
    parts = [
        losses.Parts(*(jax.device_put(ckpt.parts[f][i]) for f in losses.Parts._fields))
        for i in range(ckpt.parts["total"].shape[0])
    ]
    ends = ckpt.ends
    if len(ends) != len(parts):  # written before chunks could be short: they were whole
        chunk = ckpt.totals.shape[1] if ckpt.totals.ndim == 3 else 0
        ends = tuple(min(i * chunk, ckpt.step) for i in range(len(parts)))
    totals = [jax.device_put(t) for t in ckpt.totals]
    return optimize.Progress(state, totals, parts, ckpt.paid, ends=tuple(ends))
