"""Programs compiled ahead of time (issue 20): ``run_chunk.precompile`` compiles in a background
thread, a later call with the same shapes runs that executable instead of compiling, and a
coarse-to-fine run compiles its next stage while the current one descends."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
from conftest import smooth_image

from jaxnst.loss import losses
from jaxnst.model import vgg
from jaxnst.optim import optimize
from jaxnst.pipeline import multiscale

st = importlib.import_module("jaxnst.stylize")
TINY = dict(style_weight=1e-2, tv_weight=1.0, content_weight=1.0)


def _args(small_vars, content, style, chunk):
    o = st.make_options(**TINY)
    targets = st.prepare_targets(jnp.asarray(content), jnp.asarray(style), small_vars, o)
    config = optimize.Config(
        chunk=chunk, layers=vgg.LAYERS[:13], channels=vgg.channels_of(small_vars)
    )
    w = losses.Weights(*(jnp.full((1,), x, jnp.float32) for x in (1.0, 1e-2, 1.0)))
    hyper = optimize.Hyper(w, jnp.float32(0.05), jnp.int32(6))
    state, _ = optimize.init_state(jnp.asarray(content)[None], small_vars, targets, hyper, config)
    return state, small_vars, targets, hyper, config


def test_a_precompiled_program_is_used_and_gives_the_same_result(small_vars):
    rng = np.random.default_rng(5)
    content, style = smooth_image(rng, 24, 40), smooth_image(rng, 32, 32)
    args = _args(small_vars, content, style, chunk=6)  # (a shape no other test compiles)
    jit_before = optimize.run_chunk._jit_cache_size()
    fut = optimize.run_chunk.precompile(*args, np.int32(0))
    fut.result()
    assert optimize.run_chunk._jit_cache_size() == jit_before  # compiled outside jit's cache
    ahead = optimize.run_chunk(*args, np.int32(0))
    ahead = optimize.run_chunk(ahead[0], *args[1:], np.int32(6))
    assert optimize.run_chunk._jit_cache_size() == jit_before, "the call compiled again"
    # The same program through jit (a second code path), from the same start.
    plain = jax.jit(optimize.run_chunk.__wrapped__, static_argnames="config")
    s, *_ = plain(args[0], *args[1:4], config=args[4], steps=np.int32(0))
    ref = plain(s, *args[1:4], config=args[4], steps=np.int32(6))
    # (rtol: the reference is compiled without the CPU compiler options, so its convolutions
    # round differently, and six L-BFGS steps carry that to 2.5e-5 of the loss.)
    np.testing.assert_allclose(ahead[1], ref[1], rtol=1e-4)
    np.testing.assert_allclose(ahead[0].image, ref[0].image, atol=1e-5)


def test_coarse_to_fine_compiles_the_next_stage_ahead(small_vars, monkeypatch):
    monkeypatch.setattr(multiscale, "AUTO_MIN_SIDE", 16)
    rng = np.random.default_rng(6)
    c, s = smooth_image(rng, 44, 44), smooth_image(rng, 40, 40)
    before = optimize.run_chunk._jit_cache_size(), optimize.run_chunk._cache_size()
    r = st.stylize(c, s, variables=small_vars, scales=(22,), iterations=3, **TINY)
    jit_grew = optimize.run_chunk._jit_cache_size() - before[0]
    all_grew = optimize.run_chunk._cache_size() - before[1]
    # Two stages, two programs: the first compiled on the spot, the second ahead of time.
    assert (jit_grew, all_grew) == (1, 2)
    assert r.image.shape == (44, 44, 3) and r.iterations == 6


def test_a_crowded_process_unmaps_its_executables():
    """Compiled programs hold memory maps; past the limit release_if_crowded drops jit's caches
    and the maps go (counted here from /proc/self/maps directly), and the programs still run."""
    import pytest

    from jaxnst.optim import compilation

    maps = "/proc/self/maps"
    try:
        open(maps).close()
    except OSError:
        pytest.skip("no /proc/self/maps here")

    def count() -> int:
        with open(maps) as f:
            return len(f.readlines())

    assert abs(compilation.memory_maps() - count()) <= 2
    assert not compilation.release_if_crowded(limit=count() + 1000)
    fns = [jax.jit(lambda x, i=i: jnp.tanh(x * i) @ x.T) for i in range(40)]
    for i, f in enumerate(fns):
        f(jnp.ones((8 + i, 8)))
    held = count()
    assert compilation.release_if_crowded(limit=0)
    assert count() < held - 40, (held, count())  # at least one map per executable went
    np.testing.assert_allclose(fns[3](jnp.ones((11, 8))), np.tanh(3.0) * 8 * np.ones((11, 11)))
