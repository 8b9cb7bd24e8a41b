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

    def __init__(self, variables, style, size: int, width=1.0, precision="fp32", seed=0):
        o = train.objective_options({"style_scale": 1.0})
        self.variables = vgg.with_backward_kernels(variables)
        net = network.NetConfig(float(width))
        self.cfg = steps.TrainConfig(
            net, o.content_layers, o.style_layers, "max", vgg.channels_of(variables),
            precision=precision, stepwise=jax.default_backend() == "cpu",
            average=train.AVERAGE_DECAY,
        )  # fmt: skip
        self.grams = train.style_targets([style], size, o, self.variables, self.cfg)
        self.weights = losses.Weights(*(jnp.float32(w) for w in WEIGHTS))
        self.state = steps.init_state(network.init_params(jax.random.PRNGKey(seed), net), seed)

    def run(self, batches: np.ndarray, lr: float = 1e-3) -> np.ndarray:
        """Steps on (N, B, H, W, 3) batches, one per step; their losses."""
        self.state, hist = steps.run_chunk(
            self.state, batches, np.int32(len(batches)), self.variables, self.grams,
            self.weights, np.float32(lr), config=self.cfg,
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


def race(variables, style: np.ndarray, images: str, seconds: float, *, size=128, batch=4,
         width=1.0, chunk=5, held=4, seed=0) -> dict:  # fmt: skip
    """jaxnst and PyTorch (pytorch/examples' loop) each train the same network on the same
    objective and the same seeded batches of photos from ``images`` for ``seconds`` of wall time
    (jaxnst's compilation included), one after the other; then both are judged on ``held``
    held-out photos (never trained on) by jaxnst's objective, and each forward pass is timed on a
    256 px photo."""
    from jaxnst.feedforward import data

    train_files, val = data.validation_split(data.list_images(images), held)
    photos = data.Photos(train_files, size, batch, seed)
    check = np.stack([data.Photos(val, size, 1, seed + 1).sample(i) for i in range(len(val))])
    out: dict[str, Any] = {"seconds": seconds, "size": size, "batch": batch, "width": width}
    # Interleaved: whichever has used less of its budget runs next (a jaxnst chunk, or one
    # PyTorch step), so both see the same load from anything else on the machine.
    t0 = time.perf_counter()
    jx = JaxTrainer(variables, style, size, width)
    net, obj, opt = _torch_pair(variables, style, size, width)
    from torch_reference import train_steps

    used = {"jaxnst": time.perf_counter() - t0, "torch": 0.0}  # (jaxnst's set-up counts)
    step = tstep = 0
    while min(used.values()) < seconds:
        who = min(used, key=lambda k: used[k])
        t = time.perf_counter()
        if who == "jaxnst":
            jx.run(np.stack([photos.batch_at(k) for k in range(step, step + chunk)]))
            step += chunk
        else:
            train_steps(net, obj, opt, [photos.batch_at(tstep)])
            tstep += 1
        used[who] += time.perf_counter() - t
    out.update(jaxnst_steps=step, torch_steps=tstep, jaxnst_seconds=used["jaxnst"],
               torch_seconds=used["torch"])  # fmt: skip
    model = jx.model()
    torch_params = _params_of(net, model.params)
    judge = JaxTrainer(variables, style, size, width)  # its objective, at strength 1
    for name, params in (("jaxnst", model.params), ("torch", torch_params)):
        parts = steps.held_out(
            jax.device_put(params), check, np.zeros(len(check), np.int32),
            np.zeros(len(check), np.float32), judge.variables, judge.grams, judge.weights,
            config=judge.cfg,
        )  # fmt: skip
        out[f"{name}_held_out_loss"] = float(np.mean(np.asarray(parts.total)))
        out[f"{name}_held_out_style"] = float(np.mean(np.asarray(parts.style)))
        out[f"{name}_held_out_content"] = float(np.mean(np.asarray(parts.content)))
    start = model_file.Model(network.init_params(jax.random.PRNGKey(0), model.net), model.net, {})
    parts = steps.held_out(
        jax.device_put(start.params), check, np.zeros(len(check), np.int32),
        np.zeros(len(check), np.float32), judge.variables, judge.grams, judge.weights,
        config=judge.cfg,
    )  # fmt: skip
    out["untrained_held_out_loss"] = float(np.mean(np.asarray(parts.total)))
    out["ratio_held_out_jaxnst_vs_torch"] = out["jaxnst_held_out_loss"] / out["torch_held_out_loss"]
    nets = {"jaxnst": model, "torch": model._replace(params=torch_params)}
    outs = {k: ff_apply.apply_style(m, check) for k, m in nets.items()}
    descents: list = []
    out.update(equivalent_iterations(variables, style, check, outs, keep=descents))
    out.update(_artefacts(judge, check, {**outs, "descent": np.stack(descents)}))
    out.update(
        {f"apply256_{k}": v for k, v in apply_rate(256, 1, width=width, torch_too=True).items()}
    )
    return out


def descent_seconds(variables, size: int, iterations: int = 500, timed: int = 10) -> float:
    """One ``iterations``-iteration L-BFGS descent (jaxnst's defaults) of a ``size`` px photo,
    in seconds: ``timed`` iterations timed after a compiling run, scaled."""
    from jaxnst.stylize import stylize

    photo, style = synthetic(1, size)[0], synthetic(1, size, 99)[0]
    stylize(photo, style, variables=variables, iterations=2)  # compiles
    r = stylize(photo, style, variables=variables, iterations=timed)
    return float(r.run_seconds) / timed * iterations


def _artefacts(judge: JaxTrainer, photos: np.ndarray, outputs: dict) -> dict:
    """Checkerboard energy and border/interior error (:mod:`jaxnst.bench.artefacts`), each
    the mean over ``photos``, for each name's (M, H, W, 3) outputs."""
    from jaxnst.bench import artefacts

    layer = judge.cfg.content_layers[0]
    feats = jax.jit(lambda x: steps._vgg(x, judge.variables, (layer,), judge.cfg)[layer])
    fc = np.asarray(feats(jnp.asarray(photos)))
    res = {}
    for k, y in outputs.items():
        fy = np.asarray(feats(jnp.asarray(y, jnp.float32)))
        res[f"{k}_checkerboard_energy"] = float(np.mean(
            [artefacts.checkerboard_energy(a, c) for a, c in zip(y, photos)]))  # fmt: skip
        res[f"{k}_border_interior"] = float(np.mean(
            [artefacts.border_interior(a, b) for a, b in zip(fy, fc)]))  # fmt: skip
    return res


def equivalent_iterations(variables, style, photos, outputs: dict, iterations: int = 200,
                          keep: list | None = None) -> dict:  # fmt: skip
    """Quality as "equivalent L-BFGS iterations" (Johnson et al.'s reading): for each photo, the
    first iteration at which jaxnst's own descent from that photo (its defaults, the style at the
    photo's size) reaches each network output's objective (``iterations + 1``: not within the
    run). ``outputs``: name -> (M, H, W, 3) outputs for ``photos`` (M, H, W, 3); ``keep``: a
    list the descents' final images are appended to."""
    from jaxnst.objective import objective
    from jaxnst.stylize import stylize

    res: dict[str, list[int]] = {f"{k}_equivalent_lbfgs_iterations": [] for k in outputs}
    value = jax.jit(lambda f, x: f(x)[0])
    for i, photo in enumerate(photos):
        obj = objective(photo, style, variables=variables, style_scale=1.0)
        r = stylize(photo, style, variables=variables, iterations=iterations, style_scale=1.0)
        curve = np.asarray(r.losses)
        if keep is not None:
            keep.append(np.asarray(r.image))
        for k, outs in outputs.items():
            v = float(value(obj.loss_fn, jnp.asarray(outs[i])))
            hit = np.nonzero(curve <= v)[0]
            res[f"{k}_equivalent_lbfgs_iterations"].append(
                int(hit[0]) + 1 if hit.size else iterations + 1
            )
    return res


def strength_check(variables, style, images: str, n_steps: int, *, size=64, batch=4,
                   strengths=(0.1, 1.0, 10.0), span=(0.1, 10.0)) -> dict:  # fmt: skip
    """One network conditioned on strength over ``span`` against one network per strength trained
    at that single style weight (the same steps, photos and seed each), all judged on the same
    held-out photos at each strength by the objective at that strength (style weight 3e-4 x s)."""
    from jaxnst.feedforward import data

    _, val = data.validation_split(data.list_images(images), 4)
    check = np.stack([data.Photos(val, size, 1, 1).sample(i) for i in range(len(val))])
    kw: dict[str, Any] = dict(size=size, batch=batch, steps=n_steps, variables=variables, chunk=5)
    t = time.perf_counter()
    cond = train.train_styles(style, images, strengths=span, **kw).model
    out: dict[str, Any] = {"steps": n_steps, "size": size, "batch": batch, "span": list(span),
                           "conditional_seconds": time.perf_counter() - t}  # fmt: skip
    judge = JaxTrainer(variables, style, size)
    n = len(check)
    for st in strengths:
        single = train.train_styles(style, images, style_weight=3e-4 * st, **kw).model
        values = []
        for m, ls, sw in ((cond, np.log(st), 3e-4), (single, 0.0, 3e-4 * st)):
            w = judge.weights._replace(style=jnp.float32(sw))
            parts = steps.held_out(
                jax.device_put(m.params), check, np.zeros(n, np.int32),
                np.full(n, ls, np.float32), judge.variables, judge.grams, w,
                config=judge.cfg._replace(net=m.net),
            )  # fmt: skip
            values.append(float(np.mean(np.asarray(parts.total))))
        out[f"s{st:g}"] = {"conditional": values[0], "single": values[1],
                           "ratio": values[0] / values[1]}  # fmt: skip
        print(f"strength {st:g}: conditional {values[0]:.4g}, single {values[1]:.4g}, "
              f"ratio {values[0] / values[1]:.3f}", flush=True)  # fmt: skip
    return out


def _params_of(net, like: dict) -> dict:
    """A PyTorch TorchTransformNet's parameters in jaxnst's layout."""
    out: dict = {}
    for name, conv in net.convs.items():
        out[name] = {"kernel": conv.weight.detach().numpy().transpose(2, 3, 1, 0).copy()}
        if conv.bias is not None:
            out[name]["bias"] = conv.bias.detach().numpy().copy()
    for name, n in net.norms.items():
        out[name] = {"gamma": n.weight.detach().numpy()[None, None].copy()}
        if n.bias is not None:
            out[name]["beta"] = n.bias.detach().numpy()[None, None].copy()
    assert str(jax.tree.structure(out)) == str(jax.tree.structure(jax.device_get(like)))
    return out


def bench(a: Any, variables: dict) -> list[dict]:
    """``scripts/bench.py --feedforward``: ``train`` at each ``--size`` (batch ``--ff-batch``)
    and ``apply`` at 256, 512 and 1024 px (batch 1 and 8), with PyTorch alongside under
    ``--vs-torch``; ``--ff-race SECONDS`` (with ``--images DIR --style FILE``): the race."""
    torch_too = bool(a.vs_torch)
    rows: list[dict] = []
    if a.ff_strength:
        from jaxnst import image_io

        style = image_io.resize(image_io.load(a.style), 256)
        r = strength_check(
            variables, style, a.images, a.ff_strength, size=a.size[0], batch=a.ff_batch
        )
        return [{"case": "strength", **r}]
    if a.ff_race:
        from jaxnst import image_io

        style = image_io.resize(image_io.load(a.style), 256)
        r = race(variables, style, a.images, a.ff_race, size=a.size[0], batch=a.ff_batch)
        print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in r.items()), flush=True)  # fmt: skip
        return [{"case": "race", **r}]
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
