"""Feed-forward networks measured (issue 29), for ``scripts/bench.py --feedforward`` and the device
check's ``feedforward`` step:

- ``train``: images per second of jaxnst's compiled training chunk (network forward, VGG19 forward
  and backward, Adam) at a crop size and batch, compile excluded; with PyTorch, the same network
  and objective trained by pytorch/examples' loop (scripts/torch_reference.py), alternating.
- ``apply``: milliseconds per image of the trained network's forward pass, compiled, per size and
  batch (PyTorch's too).
- ``race``: both trained for the same wall time on the same photo batches, then judged on held-out
  photos by jaxnst's objective; and each one's forward pass timed on a photo.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.feedforward import apply as ff_apply
from jaxnst.feedforward import model_file, network, steps, train
from jaxnst.loss import losses
from jaxnst.model import vgg

WEIGHTS = (1.0, 3e-4, 1e4)  # the still image's defaults: content, style, tv


def synthetic(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) smooth random 'photos' in [0, 1] (sums of random sinusoids)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.zeros((n, size, size, 3), np.float32)
    for i in range(n):
        for c in range(3):
            for _ in range(4):
                f, g = rng.uniform(0.5, 6, 2)
                out[i, ..., c] += np.sin(2 * np.pi * (f * xx + g * yy) + rng.uniform(0, 6))
        out[i] = (out[i] - out[i].min()) / (out[i].max() - out[i].min())
    return out


class JaxTrainer:
    """jaxnst's training chunk on given batches, with the state kept between calls."""

    def __init__(self, variables, style, size: int, width=1.0, precision="fp32", seed=0,
                 optimizer: str = train.OPTIMIZER):  # fmt: skip
        o = train.objective_options({"style_scale": 1.0})
        self.variables = vgg.with_backward_kernels(variables)
        net = network.NetConfig(float(width))
        self.cfg = steps.TrainConfig(
            net, o.content_layers, o.style_layers, "max", vgg.channels_of(variables),
            precision=precision, stepwise=jax.default_backend() == "cpu",
            average=train.default_average(train.SCHEDULE), optimizer=optimizer,
        )  # fmt: skip
        self.grams = train.style_targets([style], size, o, self.variables, self.cfg)
        self.weights = losses.Weights(*(jnp.float32(w) for w in WEIGHTS))
        params = network.init_params(jax.random.PRNGKey(seed), net)
        self.state = steps.init_state(params, seed, optimizer)

    def run(self, batches: np.ndarray, lr: Any = 1e-3) -> np.ndarray:
        """Steps on (N, B, H, W, 3) batches, one per step, at step size ``lr`` (a scalar, or one
        per step); their losses."""
        self.state, hist = steps.run_chunk(
            self.state, batches, np.int32(len(batches)), self.variables, self.grams,
            self.weights, np.asarray(lr, np.float32), config=self.cfg,
        )  # fmt: skip
        return np.asarray(hist)

    def model(self) -> model_file.Model:
        params = steps.averaged(self.state, self.cfg.average)
        return model_file.Model(params, self.cfg.net, {"styles": ["s"]})


def _torch_pair(variables, style, size: int, width: float, device: str = "cpu"):
    """(net, objective, optimizer) for PyTorch, the network started from the same parameters."""
    import torch

    from jaxnst.bench.evals import scripts_on_path

    scripts_on_path()
    from torch_reference import TorchObjective, TorchTransformNet

    o = train.objective_options({"style_scale": 1.0})
    cfg = steps.TrainConfig(network.NetConfig(float(width)), o.content_layers, o.style_layers)
    grams = train.style_targets([style], size, o, vgg.with_backward_kernels(variables), cfg)
    targets: Any = losses.Targets(  # (NumPy arrays: what TorchObjective reads)
        content={n: np.zeros((1, 1, 1), np.float32) for n in o.content_layers},  # type: ignore[misc]
        grams={n: np.asarray(g[0]) for n, g in grams.items()},  # type: ignore[misc]
    )
    obj = TorchObjective(variables, targets, WEIGHTS, "max", device)
    net = TorchTransformNet(width).to(device)
    net.load_jax(jax.device_get(network.init_params(jax.random.PRNGKey(0), cfg.net)))
    return net, obj, torch.optim.Adam(net.parameters(), lr=1e-3)


def train_rate(variables, size: int, batch: int, *, width=1.0, precision="fp32", chunk=5,
               samples=3, torch_too=False) -> dict:  # fmt: skip
    """Images per second of training at ``size`` px, ``batch`` photos per step (median of
    ``samples`` chunks after a compiling one); PyTorch's alternating with it when asked."""
    style = synthetic(1, size, 99)[0]
    photos = synthetic(chunk * batch, size).reshape(chunk, batch, size, size, 3)
    t = time.perf_counter()
    jx = JaxTrainer(variables, style, size, width, precision)
    jx.run(photos)
    rec: dict[str, Any] = {"compile_and_first_chunk_seconds": time.perf_counter() - t}
    tn = _torch_pair(variables, style, size, width) if torch_too else None
    if tn is not None:
        from torch_reference import train_steps

        train_steps(*tn, photos[:1])  # warm-up
    js, ts = [], []
    for _ in range(samples):
        t = time.perf_counter()
        jx.run(photos)
        js.append(time.perf_counter() - t)
        if tn is not None:
            t = time.perf_counter()
            train_steps(*tn, photos)
            ts.append(time.perf_counter() - t)
    rec["images_per_second"] = chunk * batch / statistics.median(js)
    rec["steps_per_second"] = chunk / statistics.median(js)
    if ts:
        rec["torch_images_per_second"] = chunk * batch / statistics.median(ts)
        rec["ratio_vs_torch"] = rec["images_per_second"] / rec["torch_images_per_second"]
    return rec


def apply_rate(size: int, batch: int, *, width=1.0, samples=5, torch_too=False) -> dict:
    """Milliseconds per image of the forward pass at ``size`` px, ``batch`` at a time (compiled;
    median of ``samples``); PyTorch's (no_grad, eval) alongside when asked."""
    net = network.NetConfig(float(width))
    m = model_file.Model(network.init_params(jax.random.PRNGKey(0), net), net, {"styles": ["s"]})
    x = synthetic(batch, size)
    ff_apply.apply_style(m, x, batch=batch)
    js = []
    for _ in range(samples):
        t = time.perf_counter()
        ff_apply.apply_style(m, x, batch=batch)
        js.append(time.perf_counter() - t)
    rec: dict[str, Any] = {"ms_per_image": 1e3 * statistics.median(js) / batch}
    if torch_too:
        import torch

        from jaxnst.bench.evals import scripts_on_path

        scripts_on_path()
        from torch_reference import TorchTransformNet

        tnet = TorchTransformNet(width).load_jax(jax.device_get(m.params)).eval()
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        ts = []
        with torch.no_grad():
            tnet(xt)
            for _ in range(samples):
                t = time.perf_counter()
                tnet(xt).numpy()
                ts.append(time.perf_counter() - t)
        rec["torch_ms_per_image"] = 1e3 * statistics.median(ts) / batch
    return rec


def descent_seconds(variables, size: int, iterations: int = 500, timed: int = 10) -> float:
    """One ``iterations``-iteration L-BFGS descent (jaxnst's defaults) of a ``size`` px photo,
    in seconds: ``timed`` iterations timed after a compiling run, scaled."""
    from jaxnst.stylize import stylize

    photo, style = synthetic(1, size)[0], synthetic(1, size, 99)[0]
    stylize(photo, style, variables=variables, iterations=2)  # compiles
    r = stylize(photo, style, variables=variables, iterations=timed)
    return float(r.run_seconds) / timed * iterations


def bench(a: Any, variables: dict) -> list[dict]:
    """``scripts/bench.py --feedforward``: ``train`` at each ``--size`` (batch ``--ff-batch``)
    and ``apply`` at 256, 512 and 1024 px (batch 1 and 8), with PyTorch alongside under
    ``--vs-torch`` (``--ff-race`` and ``--ff-strength``: :func:`jaxnst.bench.ff_race.bench`)."""
    torch_too = bool(a.vs_torch)
    rows: list[dict] = []
    for size in a.size:
        r = train_rate(variables, size, a.ff_batch, torch_too=torch_too, samples=a.evals)
        rows.append({"case": "train", "size": size, "batch": a.ff_batch, **r})
        t = f"  torch {r['torch_images_per_second']:.3f} img/s" if torch_too else ""
        print(
            f"train {size:5d} px x{a.ff_batch}: {r['images_per_second']:.3f} img/s{t}", flush=True
        )
    for size in (256, 512, 1024):
        for batch in (1, 8):
            r = apply_rate(size, batch, torch_too=torch_too)
            if a.ff_vs_descent and batch == 1:
                r["descent_500_seconds"] = descent_seconds(variables, size)
                r["descent_vs_apply"] = r["descent_500_seconds"] / (r["ms_per_image"] / 1e3)
            rows.append({"case": "apply", "size": size, "batch": batch, **r})
            t = f"  torch {r['torch_ms_per_image']:.1f} ms" if torch_too else ""
            if "descent_vs_apply" in r:
                t += (f"  500-iteration descent {r['descent_500_seconds']:.0f} s "
                      f"({r['descent_vs_apply']:.0f}x)")  # fmt: skip
            print(f"apply {size:5d} px x{batch}: {r['ms_per_image']:.1f} ms/image{t}", flush=True)
    return rows


def measure_feedforward(c: Any) -> None:
    """The device check's ``feedforward`` step: training steps per second at ``ff_size`` px for
    each batch in ``ff_batches``, fp32 and bf16 (the VGG19's precision), with Johnson et al.'s
    recipe (40k steps x batch 4) projected from the batch-4 rate; then ``ff_apply`` milliseconds
    per image at each of ``ff_apply_sizes``, batch 1 and 8."""
    p = c.plan
    for batch in p.ff_batches:
        for prec in ("fp32", "bf16"):

            def one(batch=batch, prec=prec) -> dict:
                r = train_rate(c.variables, p.ff_size, batch, precision=prec, chunk=p.ff_chunk,
                               samples=p.ff_samples, width=p.ff_width)  # fmt: skip
                if batch == 4:
                    r["johnson_40k_steps_minutes"] = 40000 / r["steps_per_second"] / 60
                return {"batch": batch, **r}

            need = 2 * c.compile_guess(p.ff_size) + 10.0
            c.attempt("feedforward", p.ff_size, prec, need, one)
    for size in p.ff_apply_sizes:
        for batch in (1, 8):

            def app(size=size, batch=batch) -> dict:
                return {"batch": batch, **apply_rate(size, batch, width=p.ff_width)}

            c.attempt("ff_apply", size, "fp32", c.compile_guess(256) + 5.0, app)
