"""The feed-forward networks' quality measured (issue 29), for ``scripts/bench.py --feedforward``:

- ``race``: jaxnst and PyTorch train the same network on the same objective for the same wall
  time, then are judged on held-out photos by jaxnst's objective, as equivalent L-BFGS
  iterations, and by the artefact measures.
- ``strength_check``: one network conditioned on strength against single-strength networks.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.bench.feedforward import JaxTrainer, _torch_pair, apply_rate
from jaxnst.feedforward import apply as ff_apply
from jaxnst.feedforward import model_file, network, steps, train


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

    # jaxnst's loader decodes the next chunk on a thread while the step runs (as `jaxnst train`'s
    # Prefetcher); here only during jaxnst's turn, which waits for it before handing over, so
    # the decoding overlaps jaxnst's steps and never PyTorch's (pytorch/examples' DataLoader
    # decodes in the loop: num_workers 0).
    pool = concurrent.futures.ThreadPoolExecutor(1)
    load = lambda k: np.stack([photos.batch_at(i) for i in range(k, k + chunk)])  # noqa: E731
    ready = load(0)
    used = {"jaxnst": time.perf_counter() - t0, "torch": 0.0}  # (jaxnst's set-up counts)
    step = tstep = 0
    while min(used.values()) < seconds:
        who = min(used, key=lambda k: used[k])
        t = time.perf_counter()
        if who == "jaxnst":
            ahead = pool.submit(load, step + chunk)
            # jaxnst's default schedule over the time budget, as `jaxnst train --max-time`
            jx.run(ready, steps.rates(train.LEARNING_RATE, train.SCHEDULE, step, chunk, 1 << 30,
                                      used["jaxnst"] / seconds))  # fmt: skip
            ready = ahead.result()
            step += chunk
        else:
            train_steps(net, obj, opt, [photos.batch_at(tstep)])
            tstep += 1
        used[who] += time.perf_counter() - t
    out.update(jaxnst_steps=step, torch_steps=tstep, jaxnst_seconds=used["jaxnst"],
               torch_seconds=used["torch"])  # fmt: skip
    pool.shutdown()
    out.update(_judge(variables, style, jx, net, check, size, width))
    return out


def _judge(variables, style, jx: JaxTrainer, net, check: np.ndarray, size: int, width) -> dict:
    """The race's two networks on the held-out photos: objective, equivalent iterations,
    artefacts, and each forward pass timed at 256 px."""
    out: dict[str, Any] = {}
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


def bench(a: Any, variables: dict) -> list[dict] | None:
    """``scripts/bench.py --feedforward --ff-strength STEPS`` or ``--ff-race SECONDS`` (with
    ``--images DIR --style FILE``): that case's row; None for the speed cases."""
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
    return None
