"""Compiled programs kept on disk and keyed before tracing, so a warm run neither traces nor lowers.

JAX's persistent cache is keyed by the *lowered* program, so even a hit first traces and lowers it:
on our CPU machine (Sapphire Rapids, 2 cores) a warm 384 px run spent 0.45 s tracing the descent
program, 0.15 s lowering it and 0.15 s loading it, and half as much again on the target programs.
Here a program is keyed by what determines it before tracing: the function, its static ``config``,
the arguments' tree, shapes, dtypes and shardings, the compiler options, and the environment (this
package's source, jax and jaxlib, the device, the CPU, ``XLA_FLAGS`` and JAX's trace-affecting
configuration). A hit is one file read and ``deserialize_and_load`` (about 0.1 s).

The store lives in the compile-cache directory (``--compile-cache``; :func:`enable`), so
``--no-compile-cache`` turns both off. Anything unusable (an unstable ``repr`` in the key, a
corrupt or foreign file, a jax without the APIs used here) falls back to the normal ``jax.jit``
path. Only freshly compiled executables are written: XLA:CPU cannot re-serialize one it loaded from
JAX's cache (the copy fails at run time, ``Function ..._fusion.7 not found``), so a store miss
compiles past JAX's cache (:func:`compile_fresh`), once per program.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import pickle
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

VERSION = 1  # of this file's format and key
LIMIT = 200  # programs kept; the least recently used are removed beyond it
_state: dict[str, Path | None] = {"dir": None}
_fresh = threading.local()


def enable(path: Path | None) -> None:
    """Keep programs under ``path`` (created private to the user); None switches the store off."""
    if path is not None:
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            _install_bypass()
        except (OSError, ImportError, AttributeError):
            path = None
    _state["dir"] = path


def directory() -> Path | None:
    """The store's directory, or None when it is off: not enabled, ``JAXNST_EXECUTABLE_STORE=0``
    (JAX's cache only: to compare, or to rule the store out), or a multi-process run."""
    d = _state["dir"]
    if d is None or os.environ.get("JAXNST_EXECUTABLE_STORE") == "0":
        return None
    return d if jax.process_count() == 1 else None


@functools.cache
def _environment() -> bytes:
    import jaxlib

    from jaxnst.model.convs import cpu_flags, cpu_model

    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]  # the jaxnst package
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    d = jax.devices()[0]
    try:
        from jax._src import config as jax_config

        # (without object addresses: an empty AxisEnv prints one)
        context = re.sub(r" at 0x[0-9a-f]+", "", repr(jax_config.trace_context()))
    except (ImportError, AttributeError):
        context = "?"
    env: tuple = (VERSION, jax.__version__, jaxlib.__version__, sys.version, d.platform)
    env += (d.device_kind, d.client.platform_version, jax.device_count())
    env += (os.environ.get("XLA_FLAGS", ""), cpu_model(), sorted(cpu_flags()), context)
    h.update(repr(env).encode())
    return h.digest()


def key(name: str, options: Any, tree: Any, leaves: list, config: Any) -> str | None:
    """The store's key for one program, or None where part of it has no stable text (a function
    or object in ``config`` shows its address)."""
    sig: list[tuple] = []
    for x in leaves:
        sh = getattr(x, "sharding", None)
        sig.append((tuple(getattr(x, "shape", ())), str(getattr(x, "dtype", type(x).__name__))))
        sig.append((bool(getattr(x, "weak_type", isinstance(x, (int, float)))), str(sh)))
    text = repr((name, sorted((options or {}).items()), str(tree), sig, config))
    if " at 0x" in text:
        return None
    return hashlib.sha256(_environment() + text.encode()).hexdigest()


def load(k: str) -> Any:
    """The stored executable for key ``k`` (a ``jax.stages.Compiled``), or None."""
    d = directory()
    if d is None:
        return None
    path = d / f"{k}.bin"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        from jax.experimental.serialize_executable import deserialize_and_load

        blob, in_tree, out_tree = pickle.loads(data)  # noqa: S301 (a private 0700 directory)
        compiled = deserialize_and_load(blob, in_tree, out_tree)
        os.utime(path)  # recently used
        return compiled
    except Exception:  # noqa: BLE001 (corrupt, foreign or stale: compile instead)
        path.unlink(missing_ok=True)
        return None


def compile_fresh(compile: Callable[[], Any], k: str) -> Any:
    """``compile()`` (a ``lower(...).compile()``) past JAX's persistent cache, then stored."""
    _fresh.on = True
    try:
        compiled = compile()
    finally:
        _fresh.on = False
    d = directory()
    if d is not None:
        try:
            _save(d, k, compiled)
        except Exception:  # noqa: BLE001 (a program that cannot be serialized still runs)
            pass
    return compiled


def _save(d: Path, k: str, compiled: Any) -> None:
    from jax.experimental.serialize_executable import serialize

    data = pickle.dumps(serialize(compiled))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, d / f"{k}.bin")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    files = sorted(d.glob("*.bin"), key=lambda p: p.stat().st_mtime)
    stale = [t for t in d.glob(".tmp-*") if t.stat().st_mtime < time.time() - 3600]
    for old in files[: max(0, len(files) - LIMIT)] + stale:  # (stale: a process killed mid-write)
        old.unlink(missing_ok=True)


def _install_bypass() -> None:
    """Let :func:`compile_fresh` compile past JAX's persistent cache (on its own thread only)."""
    from jax._src import compiler

    if getattr(compiler.compile_or_get_cached, "_jaxnst_fresh", False):
        return
    cached, direct = compiler.compile_or_get_cached, compiler.backend_compile_and_load
    signature = inspect.signature(cached)
    needed = {"backend", "computation", "executable_devices", "compile_options", "host_callbacks"}
    if not needed <= set(signature.parameters):
        raise AttributeError("jax's compile_or_get_cached changed")  # (enable: store off)

    def compile_or_get_cached(*args, **kwargs):  # everything else passes through untouched
        if getattr(_fresh, "on", False):
            a = signature.bind(*args, **kwargs).arguments
            return direct(
                a["backend"],
                a["computation"],
                a["executable_devices"],
                a["compile_options"],
                a["host_callbacks"],
            )
        return cached(*args, **kwargs)

    compile_or_get_cached._jaxnst_fresh = True  # type: ignore[attr-defined]
    compiler.compile_or_get_cached = compile_or_get_cached


def timed_load(k: str) -> tuple[Any, float]:
    """:func:`load` and its seconds."""
    t0 = time.perf_counter()
    return load(k), time.perf_counter() - t0
