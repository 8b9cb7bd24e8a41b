#!/usr/bin/env python
"""jaxnst's one-evaluation-site L-BFGS against optax's own ``lbfgs`` (zoom line search).

Both descend the same objective (:func:`jaxnst.objective`) from the same start. jaxnst runs its
compiled loop (:func:`jaxnst.stylize`); the reference steps ``optax.lbfgs()`` (its zoom search,
which evaluates the objective inside its own cond, as jaxnst's loop did before) from Python, one
jitted update per step. Prints final losses, evaluations and seconds (compilation included) per
pair and size, and the JSON.

    python scripts/bench_linesearch.py [--sizes 256 512] [--iterations 100]
        [--pair CONTENT STYLE ...] [--json OUT.json]

Without --pair it uses the bundled demo pair.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import optax

import jaxnst
from jaxnst.cli.inputs import DEMO_CONTENT, DEMO_STYLE, load_sized, sample_path
from jaxnst.model import weights


def reference(obj, iterations: int) -> dict:
    """optax.lbfgs with its zoom line search, stepped from Python."""
    t0 = time.perf_counter()
    opt = optax.lbfgs()
    loss = lambda x: obj.loss_fn(x)[0]  # noqa: E731
    vg = jax.jit(jax.value_and_grad(loss))
    update = jax.jit(lambda g, s, x, v: opt.update(g, s, x, value=v, grad=g, value_fn=loss))
    img, s = obj.init_image, opt.init(obj.init_image)
    v, g = vg(img)
    evals = 1
    for _ in range(iterations):
        u, s = update(g, s, img, v)
        img = img + u
        v, g = optax.tree.get(s, "value"), optax.tree.get(s, "grad")
        evals += int(optax.tree.get(s, "num_linesearch_steps"))
    return {"loss": float(v), "evaluations": evals, "seconds": time.perf_counter() - t0}


def ours(content, style, variables, iterations: int, opts: dict) -> dict:
    t0 = time.perf_counter()
    r = jaxnst.stylize(content, style, variables=variables, iterations=iterations, **opts)
    return {
        "loss": float(r.losses[-1]),
        "evaluations": int(r.evaluations),
        "seconds": time.perf_counter() - t0,
        "compile_seconds": r.compile_seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--pair", nargs=2, action="append", metavar=("CONTENT", "STYLE"))
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    pairs = a.pair or [(str(sample_path(DEMO_CONTENT)), str(sample_path(DEMO_STYLE)))]
    variables, _ = weights.load_variables()
    opts = dict(precision="fp32")  # the same convolutions in both
    rows = []
    for c, s in pairs:
        for size in a.sizes:
            content, style = load_sized(c, size), load_sized(s, size)
            obj = jaxnst.objective(content, style, variables=variables, **opts)
            row = {"content": Path(c).name, "style": Path(s).name, "size": size}
            row["jaxnst"] = ours(content, style, variables, a.iterations, opts)
            row["optax"] = reference(obj, a.iterations)
            row["loss_ratio"] = row["jaxnst"]["loss"] / row["optax"]["loss"]
            rows.append(row)
            print(
                f"{row['content']} x {row['style']} {size}px: loss {row['jaxnst']['loss']:.4g} "
                f"vs optax {row['optax']['loss']:.4g} (x{row['loss_ratio']:.4f}); evaluations "
                f"{row['jaxnst']['evaluations']} vs {row['optax']['evaluations']}; "
                f"{row['jaxnst']['seconds']:.1f} s vs {row['optax']['seconds']:.1f} s",
                flush=True,
            )
    out = {"iterations": a.iterations, "device": jax.devices()[0].device_kind, "rows": rows}
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
