"""jaxnst's executable store (issue 20, :mod:`jaxnst.optim.stored`): programs keyed before tracing,
so a warm process loads them without tracing or lowering, and gets the same results."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnst.optim import stored

CHILD = """
import hashlib, json, sys
from pathlib import Path
import jax, numpy as np
from jax import monitoring
traced = []
monitoring.register_event_duration_secs_listener(
    lambda e, s, **kw: e == "/jax/core/compile/jaxpr_trace_duration"
    and traced.append(str(kw.get("fun_name", "?"))))
import jaxnst
from jaxnst.cli import runtime
from jaxnst.model import vgg
from jaxnst.optim import stored
cache, store = Path(sys.argv[1]), sys.argv[2] == "on"
runtime.enable_compile_cache(cache, quiet=True)
if not store:
    stored.enable(None)
small = vgg.random_variables(jax.random.PRNGKey(int(sys.argv[3])))
rng = np.random.default_rng(0)
c, s = rng.uniform(size=(24, 32, 3)), rng.uniform(size=(28, 28, 3))
r = jaxnst.stylize(c, s, variables=small, iterations=3, style_weight=1e-2, tv_weight=1.0)
print(json.dumps({"image": hashlib.sha256(np.asarray(r.image).tobytes()).hexdigest(),
                  "losses": [float(x) for x in np.asarray(r.losses).ravel()], "traced": traced}))
"""


def _child(cache: Path, store: str) -> dict:
    from conftest import SMALL_KEY

    p = subprocess.run(
        [sys.executable, "-c", CHILD, str(cache), store, str(SMALL_KEY)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_a_warm_process_loads_its_programs_untraced_with_the_same_results(tmp_path):
    """Three processes on one cache: JAX's cache only (so the next process finds the descent in
    JAX's cache, the case XLA:CPU cannot re-serialize), then the store fills, then loads. The
    last traces neither the descent nor the targets, and every image is the same to the bit."""
    cache = tmp_path / "cache"
    jax_only = _child(cache, "off")
    filling = _child(cache, "on")
    warm = _child(cache, "on")
    programs = sorted((cache / "jaxnst-programs").glob("*.bin"))
    assert len(programs) == 3, programs  # the descent and two target programs
    for name in ("run_chunk", "_net_features", "_net_grams"):
        assert any(name in t for t in jax_only["traced"]), jax_only["traced"]
        assert any(name in t for t in filling["traced"]), filling["traced"]
        assert not any(name in t for t in warm["traced"]), warm["traced"]
    assert jax_only["image"] == filling["image"] == warm["image"]
    assert jax_only["losses"] == filling["losses"] == warm["losses"]


@pytest.fixture
def store(tmp_path):
    stored.enable(tmp_path / "programs")
    yield tmp_path / "programs"
    stored.enable(None)


def _compiled(n: int):
    return jax.jit(lambda x: x * 2.0 + 1.0).lower(np.ones(n, np.float32)).compile()


def test_key_follows_what_makes_the_program_and_refuses_unstable_text(store):
    leaves, tree = jax.tree.flatten((np.ones((2, 3), np.float32), {"steps": np.int32(0)}))
    k = stored.key("m.f", {"o": ""}, tree, leaves, ("cfg", 1))
    assert k == stored.key("m.f", {"o": ""}, tree, leaves, ("cfg", 1))
    other_shape = jax.tree.flatten((np.ones((2, 4), np.float32), {"steps": np.int32(0)}))[0]
    assert k != stored.key("m.f", {"o": ""}, tree, other_shape, ("cfg", 1))
    assert k != stored.key("m.f", {"o": ""}, tree, leaves, ("cfg", 2))
    assert k != stored.key("m.f", None, tree, leaves, ("cfg", 1))
    assert k != stored.key("m.g", {"o": ""}, tree, leaves, ("cfg", 1))
    assert stored.key("m.f", None, tree, leaves, (lambda x: x,)) is None  # shows an address


def _key(*leaves, config=("cfg", 1)):
    leaves = list(leaves)
    return stored.key("m.f", None, jax.tree.structure(leaves), leaves, config)


def test_key_follows_dtype_weak_type_and_sharding(store):
    """Each pair below is one leaf whose programs differ only in dtype, weak type or sharding: a
    program stored for one would be run with the other's arguments."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

    x = np.ones((4, 3), np.float32)
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("d",))
    pairs = {
        "dtype": (x, x.astype(np.float16)),
        "dtype, integer": (np.int32(1), np.float32(1)),
        "weak type": (jnp.asarray(1.0), jnp.asarray(1.0, jnp.float32)),  # (both float32)
        "weak type, Python": (1.0, np.float32(1.0)),
        "sharding": (
            jax.device_put(x, SingleDeviceSharding(jax.devices()[0])),
            jax.device_put(x, NamedSharding(mesh, PartitionSpec("d"))),
        ),
        "sharding, spec": (
            jax.device_put(x, NamedSharding(mesh, PartitionSpec())),
            jax.device_put(x, NamedSharding(mesh, PartitionSpec("d"))),
        ),
    }
    assert jnp.asarray(1.0).weak_type and not jnp.asarray(1.0, jnp.float32).weak_type
    for what, (a, b) in pairs.items():
        ka, kb = _key(a), _key(b)
        assert ka is not None and kb is not None, what
        assert ka == _key(a) and ka != kb, what


@pytest.fixture
def environment():
    """:func:`stored._environment` is computed once per process: each test recomputes it, and the
    tests after see the real one again."""
    stored._environment.cache_clear()
    yield stored._environment.cache_clear
    stored._environment.cache_clear()


def test_key_follows_the_environment(store, environment, monkeypatch, tmp_path):
    """Stored programs must not outlive what made them: the package's source (any module, in
    any subpackage), the jax and jaxlib versions and ``XLA_FLAGS`` each change every key. A
    digest that missed one would run stale programs after an upgrade or a code change."""
    import os
    import shutil

    import jaxlib

    leaves, tree = jax.tree.flatten((np.ones((2, 3), np.float32),))

    def k():
        environment()
        return stored.key("m.f", None, tree, leaves, ("cfg", 1))

    # The package's source, from a copy that this test can change (the checkout may be edited).
    package = Path(stored.__file__).resolve().parents[1]
    copy = tmp_path / "jaxnst"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    monkeypatch.setattr(stored, "__file__", str(copy / "optim" / "stored.py"))
    base = k()
    assert base is not None and k() == base
    module = copy / "loss" / "losses.py"
    source = module.read_bytes()
    module.write_bytes(source + b"\n# one comment more\n")
    assert k() != base, "a change in jaxnst/loss/losses.py"
    module.write_bytes(source)
    assert k() == base
    (copy / "pipeline" / "new_stage.py").write_text("X = 1\n")
    assert k() != base, "a new module"
    (copy / "pipeline" / "new_stage.py").unlink()
    assert k() == base

    with monkeypatch.context() as m:
        m.setattr(jax, "__version__", jax.__version__ + ".post1")
        assert k() != base, "jax's version"
    with monkeypatch.context() as m:
        m.setattr(jaxlib, "__version__", jaxlib.__version__ + ".post1")
        assert k() != base, "jaxlib's version"
    with monkeypatch.context() as m:
        m.setenv("XLA_FLAGS", (os.environ.get("XLA_FLAGS", "") + " --xla_dump_to=/x").strip())
        assert k() != base, "XLA_FLAGS"
    assert k() == base


def test_round_trip_corrupt_files_and_the_limit(store, monkeypatch):
    k = hashlib.sha256(b"a").hexdigest()
    stored.compile_fresh(lambda: _compiled(3), k)
    back = stored.load(k)
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(back(x), x * 2.0 + 1.0)  # (NumPy's arithmetic)
    (store / f"{k}.bin").write_bytes(b"not a program")
    assert stored.load(k) is None and not (store / f"{k}.bin").exists()
    monkeypatch.setattr(stored, "LIMIT", 2)
    for n in (4, 5, 6):
        stored.compile_fresh(lambda n=n: _compiled(n), hashlib.sha256(bytes([n])).hexdigest())
    assert len(list(store.glob("*.bin"))) == 2
    monkeypatch.setenv("JAXNST_EXECUTABLE_STORE", "0")
    assert stored.load(hashlib.sha256(bytes([6])).hexdigest()) is None  # off: nothing is read
    monkeypatch.delenv("JAXNST_EXECUTABLE_STORE")
    assert stored.load(hashlib.sha256(bytes([6])).hexdigest()) is not None
    stored.enable(None)
    assert stored.load(hashlib.sha256(bytes([6])).hexdigest()) is None
