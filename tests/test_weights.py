import h5py
import jax
import numpy as np
import pytest

from jaxnst import features
from jaxnst.model import weights

MEAN_BGR = np.array([103.939, 116.779, 123.68])


def write_keras_like(path, rng, channels=(4, 8, 8, 16, 16)):
    """A small file in the Keras layout (BGR input convention), random values."""
    params = {}
    with h5py.File(path, "w") as f:
        cin = 3
        for name in weights.LAYERS:
            b, i = name[4], name[6]
            cout = channels[int(b) - 1]
            k = (rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2 / (9 * cin)) / 60).astype(
                np.float32
            )
            bias = rng.standard_normal(cout).astype(np.float32) * 0.1
            g = f.create_group(f"block{b}_conv{i}")
            g.create_dataset(f"block{b}_conv{i}_W_1:0", data=k)
            g.create_dataset(f"block{b}_conv{i}_b_1:0", data=bias)
            params[name] = (k, bias)
            cin = cout
    return params


def test_conversion_keeps_the_original_input_convention(tmp_path, rng):
    """Converted module on RGB [0, 1] == original conv1_1 on BGR, 0..255, minus the mean pixel."""
    raw = write_keras_like(tmp_path / "k.h5", rng)
    conv = weights.convert(weights.read_keras(tmp_path / "k.h5"))
    weights.save(tmp_path / "c.h5", conv)
    params, _ = weights.load(tmp_path / "c.h5", verify=False)
    variables = {"params": {k: {n: np.asarray(a) for n, a in v.items()} for k, v in params.items()}}
    img = rng.uniform(size=(9, 7, 3)).astype(np.float32)
    got = np.asarray(features(img, ["conv1_1"], variables=variables)["conv1_1"])
    bgr = img[..., ::-1].astype(np.float64) * 255.0 - MEAN_BGR
    k, b = raw["conv1_1"]
    xp = np.pad(bgr, ((1, 1), (1, 1), (0, 0)))
    ref = (
        sum(
            xp[dy : dy + 9, dx : dx + 7] @ k[dy, dx].astype(np.float64)
            for dy in range(3)
            for dx in range(3)
        )
        + b
    )
    ref = np.maximum(ref, 0)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # Deeper layers are copied unchanged.
    np.testing.assert_array_equal(params["conv3_2"]["kernel"], raw["conv3_2"][0])


def test_digest_changes_with_any_value(rng):
    p = {
        "conv1_1": {
            "kernel": rng.standard_normal((3, 3, 3, 2)).astype(np.float32),
            "bias": np.zeros(2, np.float32),
        }
    }
    d = weights.params_digest(p)
    p["conv1_1"]["bias"][1] = 1e-30
    assert weights.params_digest(p) != d


def test_load_refuses_unknown_checksum_with_the_fix(tmp_path, rng):
    write_keras_like(tmp_path / "k.h5", rng)
    weights.save(tmp_path / "c.h5", weights.convert(weights.read_keras(tmp_path / "k.h5")))
    with pytest.raises(weights.WeightsError, match="python -m jaxnst.weights fetch") as e:
        weights.load(tmp_path / "c.h5")
    assert "\n" not in str(e.value) and "checksum" in str(e.value)


def test_load_detects_truncated_and_foreign_files(tmp_path, rng):
    write_keras_like(tmp_path / "k.h5", rng)
    weights.save(tmp_path / "c.h5", weights.convert(weights.read_keras(tmp_path / "k.h5")))
    data = (tmp_path / "c.h5").read_bytes()
    (tmp_path / "t.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(weights.WeightsError, match="corrupt or truncated"):
        weights.load(tmp_path / "t.h5")
    with pytest.raises(weights.WeightsError, match="not a converted jaxnst file"):
        weights.load(tmp_path / "k.h5")
    (tmp_path / "x.h5").write_text("hello")
    with pytest.raises(weights.WeightsError, match="corrupt or truncated"):
        weights.load(tmp_path / "x.h5")
    with pytest.raises(weights.WeightsError, match="not found"):
        weights.load(tmp_path / "missing.h5")


def test_fetch_from_wrong_file_leaves_nothing(tmp_path, rng):
    write_keras_like(tmp_path / "k.h5", rng)
    dest = tmp_path / "out" / "vgg19.h5"
    with pytest.raises(weights.WeightsError, match="expected 80134624"):
        weights.fetch_weights(dest=dest, from_file=tmp_path / "k.h5", quiet=True)
    assert not dest.exists()


def test_fetch_with_no_reachable_source_names_the_command(tmp_path):
    dest = tmp_path / "vgg19.h5"
    with pytest.raises(weights.WeightsError, match="--from FILE") as e:
        weights.fetch_weights(
            dest=dest, url="http://127.0.0.1:9/none.h5", url_timeout=1, pypi=False, quiet=True
        )
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_default_path_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXNST_WEIGHTS", str(tmp_path / "w.h5"))
    assert weights.default_path() == tmp_path / "w.h5"


def test_real_weights_and_compact_copy(real_vars, tmp_path):
    variables, digest = real_vars
    assert digest == weights.CONVERTED_SHA256
    params = {k: {n: np.asarray(a) for n, a in v.items()} for k, v in variables["params"].items()}
    out = tmp_path / "compact.h5"
    assert weights.save(out, weights.compact(params)) == weights.COMPACT_SHA256
    assert out.stat().st_size < 30 * 2**20
    cparams, cdigest = weights.load(out)  # verifies against the known compact digest
    assert cdigest == weights.COMPACT_SHA256 and "conv5_2" not in cparams
    # float16 features stay close to the float32 ones.
    img = np.random.default_rng(1).uniform(size=(32, 32, 3)).astype(np.float32)
    a = features(img, ["conv4_1"], variables=variables)["conv4_1"]
    b = features(
        img,
        ["conv4_1"],
        variables={"params": jax.tree.map(lambda x: x.astype(np.float32), cparams)},
    )["conv4_1"]
    assert float(np.abs(a - b).max()) < 2e-2 * float(np.abs(a).max())
