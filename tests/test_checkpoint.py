import numpy as np
import pytest
from conftest import smooth_image

from jaxnst.optim.compilation import compile_stats
from jaxnst.pipeline import checkpoint
from jaxnst.stylize import stylize

TINY = dict(style_weight=1e-2, tv_weight=1.0, content_weight=1.0)
# chunk=4 in every run, as in the other modules' small runs at 32x32: one compiled program per
# optimizer for the whole suite (the chunk sizes the program's history).


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(11)
    return smooth_image(rng, 32, 32), smooth_image(rng, 32, 36)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_interrupted_then_resumed_equals_uninterrupted(small_vars, pair, tmp_path, optimizer):
    kw = dict(
        variables=small_vars,
        optimizer=optimizer,
        iterations=12,
        chunk=4,
        init="noise",
        learning_rate=0.05,
        **TINY,
    )
    full = stylize(*pair, **kw)
    saved = []

    def ctrl_c(step, loss, image):
        if step == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stylize(*pair, callback=ctrl_c, on_checkpoint=saved.append, **kw)
    assert len(saved) == 1 and saved[0].step == 8
    path = checkpoint.save(tmp_path / "run.ckpt.npz", saved[0])
    compiles = compile_stats()["compiles"]
    resumed = stylize(*pair, resume=path, **kw)
    # The resumed state is placed as a fresh one: the same compiled programs serve it.
    assert compile_stats()["compiles"] == compiles
    np.testing.assert_array_equal(resumed.image, full.image)
    np.testing.assert_array_equal(resumed.losses, full.losses)
    assert resumed.evaluations == full.evaluations and resumed.iterations == 12
    for k in full.history:
        np.testing.assert_array_equal(resumed.history[k], full.history[k])


def test_periodic_checkpoints_and_resuming_further(small_vars, pair):
    kw = dict(variables=small_vars, optimizer="adam", chunk=4, **TINY)
    saved = []
    stylize(*pair, iterations=6, checkpoint_every=4, on_checkpoint=saved.append, **kw)
    assert [c.step for c in saved] == [4]
    # iterations is not part of the fingerprint: a run can be continued further.
    longer = stylize(*pair, iterations=8, resume=saved[0], **kw)
    straight = stylize(*pair, iterations=8, **kw)
    np.testing.assert_array_equal(longer.image, straight.image)


def test_mismatched_checkpoint_is_refused(small_vars, pair, tmp_path):
    saved = []
    stylize(
        *pair,
        variables=small_vars,
        optimizer="adam",
        iterations=8,
        chunk=4,
        checkpoint_every=4,
        on_checkpoint=saved.append,
        **TINY,
    )
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        stylize(
            *pair,
            variables=small_vars,
            optimizer="adam",
            iterations=8,
            chunk=4,
            resume=saved[0],
            **{**TINY, "style_weight": 2e-2},
        )
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        stylize(
            pair[1][:, :32],
            pair[1],
            variables=small_vars,
            optimizer="adam",
            iterations=8,
            chunk=4,
            resume=saved[0],
            **TINY,
        )
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="unreadable"):
        checkpoint.load(tmp_path / "bad.npz")
