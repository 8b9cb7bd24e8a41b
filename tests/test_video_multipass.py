"""Multi-pass: the clip is one batch; sharded over 4 forced host CPU devices it gives the same
frames as on one device; both warped neighbours enter each frame's target; resume."""

import os
import pickle
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnst.video import synthetic

pytest.importorskip("cv2")
from jaxnst.video import core, multipass  # noqa: E402
from jaxnst.video.api import stylize_video  # noqa: E402

# Adam, as the sweep's device test: L-BFGS line-search decisions can flip on the last-bit
# differences between a sharded and an unsharded program and then diverge (measured 1.2e-2 here).
KW = dict(
    passes=2,
    pass_iterations=3,
    iterations=4,
    style_weight=1e-2,
    tv_weight=1.0,
    temporal_weight=50.0,
    optimizer="adam",
    learning_rate=0.02,
)
SCRIPT = textwrap.dedent(f"""
    import pickle, sys, jax, numpy as np
    from jaxnst.video import synthetic
    from jaxnst.video.api import stylize_video
    clip = synthetic.moving_object(6, (24, 32))
    style = synthetic.sample_image("swirls.png", 32)
    with open(sys.argv[2], "rb") as f:
        variables = jax.tree.map(jax.numpy.asarray, pickle.load(f))
    r = stylize_video(clip.frames, style, variables=variables, **{KW!r})
    np.save(sys.argv[1], r.frames)
    print("devices", jax.local_device_count(), r.devices)
""")


@pytest.fixture(scope="module")
def clip():
    return synthetic.moving_object(6, (24, 32))


@pytest.fixture(scope="module")
def one_device(clip, small_vars):
    """The 6-frame clip on one device, with the state after every pass (shared by the tests:
    the same shapes and options, so the compiled programs are reused)."""
    states = []
    style = synthetic.sample_image("swirls.png", 32)
    r = stylize_video(clip.frames, style, variables=small_vars, on_state=states.append, **KW)
    return r, states, style


@pytest.mark.slow  # a 4-device subprocess
def test_multipass_on_4_devices_equals_1_device(tmp_path, small_vars, one_device):
    env = dict(
        os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4"
    )
    out, weights = tmp_path / "frames.npy", tmp_path / "vars.pkl"
    # The same random VGG as small_vars, handed over (building it again costs a minute).
    weights.write_bytes(pickle.dumps(jax.tree.map(np.asarray, small_vars)))
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), str(weights)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "devices 4 4" in p.stdout  # pass 0: 6 frames padded to 8 rows; halves: 3 on 3
    one = one_device[0]
    assert one.devices == 1 and one.frames.shape == (6, 24, 32, 3)
    assert np.abs(np.load(out) - one.frames).max() <= 1e-3


def test_multipass_neighbours_and_resume(small_vars, clip, one_device):
    """Each frame's temporal target combines both warped neighbours (weighted by reliability,
    the mean of the two terms); a state after pass 1 resumed gives the frames of the
    uninterrupted run."""
    pan = synthetic.pan(3, (24, 32))
    ones = np.ones(pan.visible.shape, np.float32)
    flow = core.Flow(*(jnp.asarray(a) for a in (pan.forward, pan.backward, ones, ones * 0.5)))
    x = np.stack([np.full((24, 32, 3), v, np.float32) for v in (0.1, 0.5, 0.9)])
    w, c = multipass.neighbours(jnp.asarray(x), flow)
    np.testing.assert_allclose(np.asarray(c)[:, 0, 0], [0.5, 0.75, 1.0])
    # frame 0 sees only frame 1 (0.5); frame 1 sees 0.1 (c 1) and 0.9 (c 0.5); frame 2 sees 0.5
    np.testing.assert_allclose(np.asarray(w)[:, 5, 5, 0], [0.5, (0.1 + 0.45) / 1.5, 0.5], atol=1e-6)
    full, states, style = one_device
    assert [s.done for s in states] == [1, 2, 3] and full.mode == "multipass"
    resumed = stylize_video(clip.frames, style, variables=small_vars, resume=states[1], **KW)
    np.testing.assert_allclose(resumed.frames, full.frames, atol=1e-6)
