import os

import jax
import numpy as np
import pytest

from jaxnst.model import vgg
from jaxnst.optim import compilation, stored

# CLI runs inside the tests must not turn on (or fill) the user's persistent compilation cache;
# the one test of the cache passes --compile-cache explicitly.
os.environ["JAXNST_COMPILE_CACHE"] = ""
# precision="auto" (the default) times every candidate convolution form at each new layer shape on
# a CPU with bf16 units, compiling a dozen programs per shape, and caches the winners in the user's
# ~/.cache: on a fresh machine that took minutes of the suite (a 1024 px stage alone, 100 s), and
# the plans, hence the programs, depended on the machine's earlier runs. Here "auto" is float32
# unless a test asks for the plans (tests/test_convs.py does, with a private cache); set
# JAXNST_CPU_BF16=1 to run the whole suite with them.
os.environ.setdefault("JAXNST_CPU_BF16", "0")
# The CLI's time estimate measures an evaluation once per machine into ~/.cache: not from tests
# (tests/test_long_runs.py checks it with a private cache).
os.environ.setdefault("JAXNST_TIME_ESTIMATE", "0")


# The small random VGG19's key. Key 0 once missed three thresholds (the bf16x3 run's distance to
# fp32, the tileable texture's seam, the temporal term's pull), tuned to one draw; since issue 32
# the three hold for keys 0-7 (seam and pull: 0-9), each test saying why its bound holds. Run the
# suite with another draw: JAXNST_TEST_KEY=N. A subprocess that rebuilds the network must use it.
SMALL_KEY = int(os.environ.get("JAXNST_TEST_KEY", "1"))


@pytest.fixture(scope="session")
def small_vars():
    """A random VGG19 with narrow layers (4..16 channels): fast, same structure. Drawn with NumPy
    (nothing compiled), once per session: every program compiled for it serves the whole run."""
    return vgg.random_variables(jax.random.PRNGKey(SMALL_KEY))


@pytest.fixture(scope="session")
def real_vars():
    """The real, verified VGG19 weights. Missing weights fail the run in CI and skip elsewhere."""
    from jaxnst.model import weights

    try:
        return weights.load_variables(fetch=False)
    except weights.WeightsError as e:
        if os.environ.get("CI"):
            pytest.fail(f"real weights needed in CI: {e}")
        pytest.skip(f"real weights not available: {e}")


@pytest.fixture(autouse=True)
def _fewer_maps_after_each_test():
    """A worker runs ~300 tests, compiling for each: past jaxnst.optim.compilation.MAX_MAPS memory
    maps jit's caches are dropped, before the kernel's limit kills the worker mid-compile."""
    yield
    compilation.release_if_crowded()


@pytest.fixture(autouse=True)
def _store_off_after_each_test():
    """A test that turns the compile cache on in this process must not leave jaxnst's executable
    store on for the tests after it: a program keyed before tracing would not see their
    monkeypatches (tests replace parts_fn to count evaluations)."""
    yield
    stored.enable(None)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def smooth_image(rng, h, w):
    """A smooth-ish random RGB image in [0, 1] (sum of a few random gradients and blobs)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for c in range(3):
        a, b, f = rng.uniform(-1, 1, 3)
        img[..., c] = (
            0.5 + 0.3 * np.sin(6 * (a * x + b * y) + f) + 0.1 * rng.standard_normal((h, w))
        )
    return np.clip(img, 0, 1).astype(np.float32)
