#!/usr/bin/env python
"""``--scales auto`` against single-scale (``--scales none``) at equal wall time, judged at full
resolution.

Coarse-to-fine runs first with ``scales="auto"`` and ``--iterations`` (the schedule of
:func:`jaxnst.pipeline.multiscale.auto_schedule`); its wall time (compilation included) is the
budget. Single-scale then runs at the full size from the same start and stops at the chunk end
nearest that budget (compilation included too), so both get the same wall time. Both results are
evaluated with the optimised objective at full resolution (:func:`jaxnst.objective`: weighted total,
unweighted content, style and TV losses). Prints a table and the JSON, writes ``scales.json`` and
``scales_compare.jpg`` (left single-scale, right auto) in --out.

    python scripts/bench_scales.py --size 1024 --iterations 500 [--content C --style S]
        [--out DIR] [--weights vgg19.h5] [--tile N] [--param laplacian]

Coarse-to-fine exists for the large structures a full-size Gram does not see, so both results
are also judged by the style loss at half and quarter size (``style_loss_half``,
``style_loss_quarter``: the result, the content and the style each downsampled, antialiased).

For a quick check at a small size, lower the coarsest stage: ``--size 128 --min-side 32``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

import jaxnst
from jaxnst import image_io
from jaxnst.cli.inputs import load_sized, sample_path
from jaxnst.model import weights
from jaxnst.pipeline import multiscale


def full_res_losses(evaluate, image) -> dict:
    """The objective both runs descend, at full resolution: total (weighted) and the parts."""
    total, parts = evaluate(jax.numpy.asarray(image, jax.numpy.float32))
    return {
        "total_loss": float(total),
        "style_loss": float(parts.style),
        "content_loss": float(parts.content),
        "tv_loss": float(parts.tv),
    }


def coarse_evaluators(content, style, variables, options: dict) -> dict:
    """``{"half": f, "quarter": f}``: f(image) -> the style loss of ``image`` downsampled by 2
    (4) against the style downsampled alike (the objective rebuilt at that size)."""
    out = {}
    for name, k in (("half", 2), ("quarter", 4)):
        c, st = (_down(x, k) for x in (content, style))
        obj = jaxnst.objective(c, st, variables=variables, **options)
        f = jax.jit(lambda im, obj=obj, k=k: obj.loss_fn(_down(im, k))[1].style)
        out[name] = f
    return out


def _down(image, k: int):
    h, w = np.shape(image)[:2]
    return jax.image.resize(
        jax.numpy.asarray(image, jax.numpy.float32), (h // k, w // k, 3), "linear", antialias=True
    )


def run_auto(content, style, variables, iterations: int, options: dict) -> tuple[dict, object]:
    stages: dict[int, dict] = {}
    t0 = time.perf_counter()

    def watch(step, loss, image):
        side = max(np.shape(image)[:2])
        stages[side] = {"size": side, "iterations": int(step), "ended_s": time.perf_counter() - t0}

    r = jaxnst.stylize(
        content,
        style,
        variables=variables,
        scales="auto",
        iterations=iterations,
        callback=watch,
        **options,
    )
    wall = time.perf_counter() - t0
    planned = multiscale.stages(r.options, max(content.shape[:2]))
    rep = {
        "wall_s": wall,
        "schedule": [{"size": s, "iterations": n} for s, n in planned],
        "stages": [stages[s] for s, _ in planned if s in stages],
        "iterations": int(r.iterations),
        "evaluations": int(r.evaluations),
        "compile_s": float(r.compile_seconds),
    }
    return rep, r


def run_single(content, style, variables, budget: float, options: dict, chunk: int, cap: int):
    """Single-scale until the chunk end nearest ``budget`` seconds after the start."""
    t0 = time.perf_counter()
    last = {"t": 0.0}

    def stop(step, loss, image):
        now = time.perf_counter() - t0
        dt, last["t"] = (now - last["t"] if last["t"] else 0.0), now  # the first has compiled
        return now + 0.5 * dt >= budget  # the next chunk end would be further from the budget

    r = jaxnst.stylize(
        content,
        style,
        variables=variables,
        scales=None,
        iterations=cap,
        chunk=chunk,
        callback=stop,
        **options,
    )
    wall = time.perf_counter() - t0
    rep = {
        "wall_s": wall,
        "schedule": [{"size": max(content.shape[:2]), "iterations": int(r.iterations)}],
        "iterations": int(r.iterations),
        "evaluations": int(r.evaluations),
        "compile_s": float(r.compile_seconds),
    }
    return rep, r


def table(rep: dict) -> str:
    rows = [
        "| run | total loss | style loss | style at 1/2 | style at 1/4 | content loss | wall s "
        "| iterations per stage |"
    ]
    rows.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in ("none", "auto"):
        r = rep[name]
        its = ", ".join(f"{x['iterations']} @ {x['size']} px" for x in r["schedule"])
        rows.append(
            f"| --scales {name} | {r['total_loss']:.4g} | {r['style_loss']:.4g} | "
            f"{r['style_loss_half']:.4g} | {r['style_loss_quarter']:.4g} | "
            f"{r['content_loss']:.4g} | {r['wall_s']:.1f} | {its} |"
        )
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="longer side, px")
    ap.add_argument("--iterations", type=int, default=500, help="--iterations of the auto run")
    ap.add_argument("--content", default=str(sample_path("chelsea.jpg")))
    ap.add_argument("--style", default=str(sample_path("swirls.png")))
    ap.add_argument("--out", default=".")
    ap.add_argument("--weights", default=None, help="VGG19 weights (default: as the CLI)")
    ap.add_argument("--tile", type=int, default=None, help="evaluate in N px tiles (both runs)")
    ap.add_argument(
        "--min-side",
        type=int,
        default=None,
        help=f"coarsest stage of auto (default {multiscale.AUTO_MIN_SIDE}; lower for small tests)",
    )
    ap.add_argument("--param", default="pixels", help="pixels | laplacian (both runs)")
    ap.add_argument("--chunk", type=int, default=5, help="single-scale: steps between time checks")
    ap.add_argument("--max-iterations", type=int, default=100_000, help="single-scale cap")
    a = ap.parse_args()
    if a.min_side is not None:
        multiscale.AUTO_MIN_SIDE = a.min_side
    variables, _ = weights.load_variables(a.weights)
    content = load_sized(a.content, a.size)
    style = load_sized(a.style, a.size)  # the CLI's default: the content's longer side
    options = {"tile": a.tile} if a.tile else {}
    descent = options | {"param": a.param}
    # Compiled and run once before either clock starts, so neither pays the runtime's start-up.
    evaluate = jax.jit(jaxnst.objective(content, style, variables=variables, **options).loss_fn)
    start = full_res_losses(evaluate, content)
    coarse = coarse_evaluators(content, style, variables, options)
    auto, ra = run_auto(content, style, variables, a.iterations, descent)
    none, rn = run_single(
        content, style, variables, auto["wall_s"], descent, a.chunk, a.max_iterations
    )
    for rep_, r in ((auto, ra), (none, rn)):
        rep_.update(full_res_losses(evaluate, r.image))
        rep_.update({f"style_loss_{k}": float(f(r.image)) for k, f in coarse.items()})
    rep = {
        "size": list(content.shape[:2]),
        "content": a.content,
        "style": a.style,
        "iterations": a.iterations,
        "param": a.param,
        "device": jax.devices()[0].device_kind,
        "start": start,  # the content image itself, where both runs start
        "none": none,
        "auto": auto,
        "style_loss_ratio_none_over_auto": none["style_loss"] / auto["style_loss"],
        "total_loss_ratio_none_over_auto": none["total_loss"] / auto["total_loss"],
        **{
            f"style_loss_{k}_ratio_none_over_auto": none[f"style_loss_{k}"]
            / auto[f"style_loss_{k}"]
            for k in coarse
        },
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    gap = np.ones((content.shape[0], 8, 3), np.float32)
    image_io.save(out / "scales_compare.jpg", np.concatenate([rn.image, gap, ra.image], 1))
    with open(out / "scales.json", "w") as f:
        json.dump(rep, f, indent=2)
    print(table(rep))
    print(json.dumps(rep, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
