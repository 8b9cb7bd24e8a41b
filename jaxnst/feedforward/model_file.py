"""The model file (``.jaxnst``): one file holding a trained network's parameters, what it was
trained with, and (while training) what it takes to continue.

Layout: the magic bytes ``JAXNST-MODEL\\n``, the format version (uint32, little-endian), the
length of a UTF-8 JSON header (uint64), the header, then the payload: Flax's msgpack of
``{"params": ..., "train": ...}``. The header holds the payload's length and SHA-256 and the
metadata (:class:`Model` ``meta``): the network's shape, style names and digests, the VGG19
weights' digest, crop size, steps, the objective's options, the loss history. A file is written
atomically (a temporary file, then a rename). A truncated, altered, foreign or newer-format file
is refused with one line (:class:`ModelError`).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from flax import serialization

from jaxnst._atomic import atomic_path
from jaxnst.feedforward.network import NetConfig

MAGIC = b"JAXNST-MODEL\n"
FORMAT = 1
SUFFIX = ".jaxnst"


class ModelError(ValueError):
    """A model file can't be read or written (one line naming the file)."""


class Model(NamedTuple):
    """A trained network: ``params`` (Flax parameters, NumPy or JAX arrays), ``net`` its
    :class:`~jaxnst.feedforward.network.NetConfig`, ``meta`` a JSON-able dict (``styles``: names;
    ``objective``: the options; ``steps``; ...), ``train`` the state to resume from (or None)."""

    params: Any
    net: NetConfig
    meta: dict
    train: Any = None

    @property
    def styles(self) -> list[str]:
        return list(self.meta.get("styles", []))


def _net_meta(net: NetConfig) -> dict:
    return {**net._asdict(), "strengths": list(net.strengths)}


def _net_from(meta: dict) -> NetConfig:
    d = dict(meta)
    d["strengths"] = tuple(float(s) for s in d["strengths"])
    return NetConfig(**d)


def to_bytes(model: Model) -> bytes:
    state = {"params": model.params, "train": model.train if model.train is not None else {}}
    payload = serialization.msgpack_serialize(serialization.to_state_dict(_host(state)))
    header = {
        "format": FORMAT,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "net": _net_meta(model.net),
        "meta": model.meta,
    }
    h = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack("<IQ", FORMAT, len(h)) + h + payload


def _host(tree: Any) -> Any:
    import jax

    return jax.tree.map(np.asarray, jax.device_get(tree))


def save(path: str | os.PathLike, model: Model) -> Path:
    """Write ``model`` to ``path`` atomically; ModelError if the folder is missing."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ModelError(f"{p}: directory {parent} does not exist")
    data = to_bytes(model)
    with atomic_path(p) as tmp:
        Path(tmp).write_bytes(data)
    return p


def read_header(data: bytes, name: str) -> tuple[dict, bytes]:
    """(header, payload) of a model file's bytes, checked; ModelError otherwise."""
    if not data.startswith(MAGIC):
        raise ModelError(f"{name}: not a jaxnst model file (train one with: jaxnst train)")
    fixed = len(MAGIC) + 12
    if len(data) < fixed:
        raise ModelError(f"{name}: truncated model file ({len(data)} bytes)")
    version, hlen = struct.unpack("<IQ", data[len(MAGIC) : fixed])
    if version > FORMAT:
        raise ModelError(
            f"{name}: model file format {version} is newer than this jaxnst reads ({FORMAT}); "
            "upgrade jaxnst"
        )
    if len(data) < fixed + hlen:
        raise ModelError(f"{name}: truncated model file (header cut short)")
    try:
        header = json.loads(data[fixed : fixed + hlen])
    except ValueError:
        raise ModelError(f"{name}: damaged model file (unreadable header)") from None
    payload = data[fixed + hlen :]
    if len(payload) != header.get("payload_bytes"):
        raise ModelError(
            f"{name}: truncated model file ({len(payload)} of {header.get('payload_bytes')} "
            "payload bytes)"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ModelError(f"{name}: damaged model file (checksum mismatch)")
    return header, payload


def load(path: str | os.PathLike) -> Model:
    """Read a model file; ModelError (one line) for a missing, truncated, damaged, foreign or
    newer-format file."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: no such model file")
    return from_bytes(p.read_bytes(), str(p))


def from_bytes(data: bytes, name: str = "model") -> Model:
    header, payload = read_header(data, name)
    try:
        state = serialization.msgpack_restore(payload)
        net = _net_from(header["net"])
    except Exception as e:  # noqa: BLE001 (a checksum-valid file from a broken writer)
        raise ModelError(f"{name}: damaged model file ({type(e).__name__})") from None
    train = state.get("train") or None
    return Model(state["params"], net, header.get("meta", {}), train)
