"""Guided Grams over each region's own positions (jaxnst.loss.guided.region_index) equal the
dense form, values and gradients; soft masks covering the image keep the dense form."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.loss import guided
from jaxnst.pipeline.prepare import layer_masks


def test_gathered_regions_equal_the_dense_form(rng):
    labels = np.zeros((16, 12), np.int64)
    labels[5:, :] = 1
    labels[9:, 7:] = 2  # region 3 is empty: its Gram is 0 in both forms
    masks = np.stack([labels == r for r in range(4)]).astype(np.float32)
    pooled = layer_masks(masks, ("conv1_1", "conv2_1"))["conv2_1"]  # (4, 8, 6): mixed cells
    index = guided.region_index({"conv2_1": pooled})["conv2_1"]
    assert index.weight[3].shape == (0,) and index.inverse.shape[0] == 2
    f = jnp.asarray(rng.standard_normal((8, 6, 5)), jnp.float32)
    a = jnp.asarray(rng.standard_normal((4, 5, 5)), jnp.float32)

    def loss(f, index):
        return guided.guided_layer_loss(f, a, pooled, index)

    dense = jax.value_and_grad(loss)(f, None)
    got = jax.value_and_grad(loss)(f, index)
    for x, y in zip(got, dense):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    ref = [guided.guided_gram(f, m) for m in pooled]
    np.testing.assert_allclose(guided.region_grams(f, pooled, index), ref, rtol=1e-5, atol=1e-7)
    soft = np.full((2, 8, 6), 0.5, np.float32)
    assert guided.region_index({"conv2_1": soft}) == {}
