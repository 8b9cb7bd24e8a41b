"""Warping, optical flow and the reliability weights, against independent references (OpenCV's
remap, NumPy) and the true motion of the synthetic clips."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnst.video import synthetic, warp

cv2 = pytest.importorskip("cv2")
from jaxnst.video import flow  # noqa: E402


def test_warp_matches_opencv_remap(rng):
    img = rng.random((20, 30, 3)).astype(np.float32)
    f = rng.uniform(-3, 3, (20, 30, 2)).astype(np.float32)
    ours = np.asarray(warp.warp(jnp.asarray(img), jnp.asarray(f)))
    ys, xs = np.mgrid[0:20, 0:30].astype(np.float32)
    mx, my = xs + f[..., 0], ys + f[..., 1]
    ref = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ok = (mx >= 0) & (mx <= 29) & (my >= 0) & (my <= 19)  # the border rule may differ outside
    assert ok.mean() > 0.5
    np.testing.assert_allclose(ours[ok], ref[ok], atol=2e-3)  # remap uses 5-bit weights
    np.testing.assert_array_equal(np.asarray(warp.inside(jnp.asarray(f))), ok)


def test_warp_integer_shift_is_exact_and_differentiable(rng):
    img = jnp.asarray(rng.random((8, 9, 3)), jnp.float32)
    f = jnp.zeros((8, 9, 2)).at[..., 0].set(2.0)  # sample 2 px to the right
    np.testing.assert_array_equal(np.asarray(warp.warp(img, f))[:, :7], np.asarray(img)[:, 2:])
    batched = jax.jit(jax.vmap(warp.warp))(jnp.stack([img, img]), jnp.stack([f, f]))
    assert batched.shape == (2, 8, 9, 3)
    g = jax.grad(lambda x: jnp.sum(warp.warp(x, f + 0.3) ** 2))(img)
    assert np.isfinite(np.asarray(g)).all() and float(jnp.abs(g).sum()) > 0


def _reliability_numpy(fwd, bwd):
    """Ruder et al.'s tests written independently: OpenCV remap for w~, np.gradient."""
    h, w = bwd.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs + bwd[..., 0], ys + bwd[..., 1]
    wt = np.stack(
        [
            cv2.remap(fwd[..., k], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for k in range(2)
        ],
        -1,
    )
    occ = ((wt + bwd) ** 2).sum(-1) > 0.01 * ((wt**2).sum(-1) + (bwd**2).sum(-1)) + 0.5
    gu, gv = np.gradient(bwd[..., 0]), np.gradient(bwd[..., 1])
    mb = gu[0] ** 2 + gu[1] ** 2 + gv[0] ** 2 + gv[1] ** 2 > 0.01 * (bwd**2).sum(-1) + 0.002
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return (~occ & ~mb & inside).astype(np.float32)


def test_reliability_matches_numpy_reference():
    clip = synthetic.moving_object(3, (40, 56))
    fwd, bwd = clip.forward[0], clip.backward[0]
    ours = np.asarray(warp.reliability(jnp.asarray(fwd), jnp.asarray(bwd)))
    ref = _reliability_numpy(fwd, bwd)
    assert 0.3 < ref.mean() < 0.99  # both kinds of pixel are present
    assert (ours != ref).mean() < 0.005  # remap's 5-bit weights may flip a borderline pixel


def test_reliability_masks_disocclusion_and_motion_boundaries():
    clip = synthetic.moving_object(4, (64, 80))
    c = np.asarray(
        jax.vmap(warp.reliability)(jnp.asarray(clip.forward), jnp.asarray(clip.backward))
    )
    hidden = clip.hidden
    assert hidden.mean() > 0.01
    assert c[hidden].mean() < 0.05  # the uncovered background is masked out
    assert c[clip.visible].mean() > 0.85  # and most of what is visible is kept


def test_true_flow_of_the_synthetic_pan_warps_frame_t_minus_1_onto_t():
    clip = synthetic.pan(4, (40, 56), speed=(0.5, 2.0))
    np.testing.assert_allclose(clip.backward[..., 0], 2.0, atol=1e-5)
    np.testing.assert_allclose(clip.backward[..., 1], 0.5, atol=1e-5)
    np.testing.assert_allclose(clip.forward, -clip.backward, atol=1e-5)
    w = np.asarray(jax.vmap(warp.warp)(jnp.asarray(clip.frames[:-1]), jnp.asarray(clip.backward)))
    err = np.abs(w - clip.frames[1:]).mean(-1)[clip.visible].mean()
    assert err < 0.01


@pytest.mark.parametrize("make", [synthetic.pan, synthetic.zoom])
def test_dis_flow_end_point_error_and_convention(make):
    clip = make(4, (96, 128))
    f = flow.clip_flows(clip.frames)
    m = 8  # interior
    epe = np.linalg.norm(f.backward - clip.backward, axis=-1)[:, m:-m, m:-m]
    assert epe.mean() < 0.5, epe.mean()
    epe_f = np.linalg.norm(f.forward - clip.forward, axis=-1)[:, m:-m, m:-m]
    assert epe_f.mean() < 0.5, epe_f.mean()
    frames = jnp.asarray(clip.frames)
    est = np.asarray(jax.vmap(warp.warp)(frames[:-1], jnp.asarray(f.backward)))
    flipped = np.asarray(jax.vmap(warp.warp)(frames[:-1], -jnp.asarray(f.backward)))
    vis = clip.visible
    err = np.abs(est - clip.frames[1:]).mean(-1)[vis].mean()
    err_flipped = np.abs(flipped - clip.frames[1:]).mean(-1)[vis].mean()
    assert err < 0.015 and err < err_flipped / 4, (err, err_flipped)


def test_dis_flow_on_moving_object_and_single_frame():
    clip = synthetic.moving_object(4, (64, 80))
    f = flow.clip_flows(clip.frames)
    assert f.forward.shape == f.backward.shape == (3, 64, 80, 2)
    assert f.reliable_prev.shape == f.reliable_next.shape == (3, 64, 80)
    # Reliable pixels are truly visible, and the flow there is accurate.
    rel = f.reliable_prev > 0
    assert (rel & ~clip.visible).mean() < 0.02
    epe = np.linalg.norm(f.backward - clip.backward, axis=-1)
    assert np.median(epe[rel]) < 0.5
    one = flow.clip_flows(clip.frames[:1])
    assert one.forward.shape == (0, 64, 80, 2) and one.reliable_prev.shape == (0, 64, 80)


def test_warping_error_is_zero_for_the_clip_itself_and_grows_with_flicker(rng):
    clip = synthetic.moving_object(4, (40, 56))
    e0 = synthetic.warping_error(clip.frames, clip)
    noisy = np.clip(clip.frames + rng.normal(0, 0.05, clip.frames.shape), 0, 1)
    assert e0 < 0.01 and synthetic.warping_error(noisy, clip) > 0.04
