"""The benchmark scripts still run (tiny sizes; their numbers are not checked here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # a benchmark script in a subprocess
def test_bench_loop_runs(tmp_path):
    out = tmp_path / "b.json"
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_loop.py"),
            "--size",
            "32",
            "--steps",
            "2",
            "--repeats",
            "1",
            "--random-weights",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(out.read_text())
    assert set(r["seconds_per_eval"]) == {"compiled", "python_loop", "compiled_autodiff"}
    assert all(v > 0 for v in r["seconds_per_eval"].values())


@pytest.mark.slow  # a benchmark script in a subprocess
def test_bench_runs_and_reports(tmp_path):
    out = tmp_path / "bench.json"
    args = [
        sys.executable,
        str(ROOT / "scripts" / "bench.py"),
        "--size",
        "32",
        "48",
        "--evals",
        "2",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--random-weights",
        "--xla-cpu-ynn",
        "--json",
        str(out),
    ]
    try:
        import torch  # noqa: F401

        args += ["--vs-torch", "--torch-bf16"]
    except ImportError:
        pass
    p = subprocess.run(args, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(out.read_text())
    assert [x["size"] for x in r["results"]] == [32, 48]
    assert r["seconds_per_eval"] == r["results"][0]["seconds_per_eval"] > 0
    for x in r["results"]:
        assert x["gflops"] > 0 and 0 < x["fraction_of_matmul"] and x["compile_seconds"] > 0
        assert x["seconds_per_eval_ynn"] > 0
        if "--vs-torch" in args:
            assert x["torch_seconds_per_eval"] > 0 and x["ratio_vs_torch"] > 0
            assert x["torch_bf16_seconds_per_eval"] > 0 and x["ratio_vs_torch_bf16"] > 0


@pytest.mark.slow  # a benchmark script in a subprocess
def test_bench_layers_table(tmp_path):
    """--layers: every conv shape of VGG19 up to conv5_1, forward and input-gradient, each form
    timed, and the plan's total no slower than XLA fp32 everywhere (it may pick XLA fp32)."""
    out = tmp_path / "layers.json"
    args = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--layers", "--size", "32"]
    p = subprocess.run(
        [*args, "--random-weights", "--json", str(out)], capture_output=True, text=True, timeout=900
    )
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["matmul_gflops"]["fp32"] > 0 and r["matmul_gflops"]["bf16"] > 0
    (t,) = r["tables"]
    assert [(x["layer"], x["direction"]) for x in t["layers"]][:3] == [
        ("conv1_1", "forward"),
        ("conv1_1", "input-grad"),
        ("conv1_2", "forward"),
    ]
    assert len(t["layers"]) == 2 * 13
    assert t["layers"][1]["shape"] == [32, 32, 64, 3]
    for x in t["layers"]:
        assert x["fastest"] == min(x["seconds"], key=x["seconds"].get)
    assert t["conv_seconds_fastest_per_layer"] <= t["conv_seconds_xla_fp32"]


def test_flop_count_agrees_with_xla(small_vars):
    """The benchmark's hand count of one evaluation against XLA's own count of the compiled program
    (full-width random VGG, 64 px): within 15 % (XLA also counts elementwise work; we do not)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench
    import jax
    import jax.numpy as jnp

    from jaxnst.loss import losses
    from jaxnst.model import vgg
    from jaxnst.optim import optimize

    variables = vgg.random_variables(jax.random.PRNGKey(0), channels=vgg.CHANNELS)
    img = jnp.full((64, 64, 3), 0.5)
    model = vgg.VGG19()
    targets = losses.make_targets(
        model.apply(variables, img, ("conv4_2",)),
        model.apply(variables, img, bench.STYLE_LAYERS),
        ("conv4_2",),
        bench.STYLE_LAYERS,
    )
    w = losses.Weights(jnp.float32(1), jnp.float32(1), jnp.float32(1))
    config = optimize.Config(layers=bench.LAYERS)
    cost = (
        jax.jit(jax.grad(optimize._total), static_argnums=4)
        .lower(img, variables, targets, w, config)
        .compile()
        .cost_analysis()
    )
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    ours = bench.flops_per_eval(64, 64)
    assert abs(float(cost["flops"]) - ours) / ours < 0.15, (cost["flops"], ours)


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_torch_reference_is_the_same_objective(small_vars, pooling):
    """The benchmark compares like with like: PyTorch's value and image gradient equal jaxnst's
    (small random VGG, 40x36 image, every loss term on)."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "scripts"))
    import jax
    import jax.numpy as jnp
    import numpy as np
    from torch_reference import TorchObjective

    from jaxnst.loss import losses
    from jaxnst.model import vgg
    from jaxnst.optim import optimize
    from jaxnst.stylize import STYLE_LAYERS

    rng = np.random.default_rng(1)
    content, style, x = (rng.uniform(size=(40, 36, 3)).astype(np.float32) for _ in range(3))
    channels = vgg.channels_of(small_vars)
    model = vgg.VGG19(pooling=pooling, channels=channels)
    targets = losses.make_targets(
        model.apply(small_vars, jnp.asarray(content), ("conv4_2",)),
        model.apply(small_vars, jnp.asarray(style), STYLE_LAYERS),
        ("conv4_2",),
        STYLE_LAYERS,
    )
    weights = (1.0, 3e-2, 10.0)
    config = optimize.Config(
        pooling=pooling, channels=channels, layers=tuple(sorted(set(STYLE_LAYERS) | {"conv4_2"}))
    )
    value, grad = jax.value_and_grad(optimize._total)(
        jnp.asarray(x), small_vars, targets, losses.Weights(*map(jnp.float32, weights)), config
    )
    ref = TorchObjective(small_vars, targets, weights, pooling)
    timg = ref.image(x)
    tv = ref.loss(timg)
    tv.backward()
    np.testing.assert_allclose(tv.item(), float(value), rtol=1e-5)
    tg = timg.grad[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(tg, np.asarray(grad), rtol=1e-3, atol=1e-4 * np.abs(tg).max())


@pytest.mark.parametrize(
    "script",
    [
        "bench_speckle.py",
        "bench_strotss.py",
        "compare_methods.py",
        "bench_tiles.py",
        "compare_photoreal.py",
    ],
)
def test_long_benchmarks_explain_themselves(script):
    """Their runs take minutes (speckle, Gatys against STROTSS, tiles at 2048 px): here only
    that they start."""
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "usage:" in p.stdout and "--json" in p.stdout


def test_torch_feedforward_is_the_same_network_and_loss(small_vars):
    """The feed-forward race compares like with like: PyTorch's network (jaxnst's parameters
    loaded) gives jaxnst's outputs, and its training loss jaxnst's batch loss."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "scripts"))
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    from torch_reference import TorchObjective, TorchTransformNet, feedforward_loss

    from jaxnst.feedforward import network, steps, train
    from jaxnst.loss import losses
    from jaxnst.model import vgg

    net = network.NetConfig(0.25)
    params = jax.device_get(network.init_params(jax.random.PRNGKey(3), net))
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
    o = train.objective_options({"style_scale": 1.0})
    run_vars = vgg.with_backward_kernels(small_vars)
    cfg = steps.TrainConfig(net, o.content_layers, o.style_layers, "max", (4, 8, 8, 16, 16))
    grams = train.style_targets([rng.uniform(size=(32, 32, 3))], 32, o, run_vars, cfg)
    w = losses.Weights(jnp.float32(1.0), jnp.float32(3e-2), jnp.float32(10.0))
    loss, _ = jax.jit(steps.batch_loss, static_argnums=7)(
        params, x, jnp.zeros(2, jnp.int32), jnp.zeros(2), run_vars, grams, w, cfg
    )
    tnet = TorchTransformNet(0.25).load_jax(params)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        yt = tnet(xt)
    y = network.TransformNet(net).apply(
        {"params": params}, x, network.conditioning(jnp.zeros(2, jnp.int32), jnp.zeros(2), net)
    )
    np.testing.assert_allclose(yt.numpy().transpose(0, 2, 3, 1), np.asarray(y), atol=2e-5)
    targets = losses.Targets(
        content={n: np.zeros((1, 1, 1), np.float32) for n in o.content_layers},
        grams={n: np.asarray(g[0]) for n, g in grams.items()},
    )
    obj = TorchObjective(small_vars, targets, (1.0, 3e-2, 10.0))
    np.testing.assert_allclose(feedforward_loss(obj, xt, yt).item(), float(loss), rtol=1e-4)
