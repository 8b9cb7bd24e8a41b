#!/usr/bin/env python
"""Is the compiled descent loop at least as fast per evaluation as a Python loop of jitted steps?

Times, side by side in one process, alternating, seconds per loss+gradient evaluation (Adam, one
evaluation per step, compile excluded) for:
  compiled      jaxnst's loop: ``config.chunk`` steps in one jitted lax.scan (custom-VJP convs)
  python_loop   a Python loop calling one jitted step per iteration (the host syncs every step)
  compiled_autodiff  the compiled loop with plain autodiff convolutions (the slow path on XLA:CPU)
Prints a table and, with --json, writes the numbers (``seconds_per_eval`` per variant, ratios).

    python scripts/bench_loop.py --size 256 --steps 10 --repeats 3 [--json out.json]
"""

import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnst.loss import losses
from jaxnst.model import vgg, weights
from jaxnst.optim import optimize
from jaxnst.stylize import CONTENT_LAYERS, STYLE_LAYERS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--random-weights",
        action="store_true",
        help="full-width random weights instead of the real ones (no download)",
    )
    ap.add_argument("--json")
    a = ap.parse_args()

    if a.random_weights:
        # Drawn with NumPy: Flax's init traced and compiled the whole network for it.
        variables = vgg.random_variables(jax.random.PRNGKey(0), channels=vgg.CHANNELS)
    else:
        variables, _ = weights.load_variables()
    rng = np.random.default_rng(0)
    content = jnp.asarray(rng.uniform(size=(a.size, a.size, 3)), jnp.float32)
    style = jnp.asarray(rng.uniform(size=(a.size, a.size, 3)), jnp.float32)
    layers = tuple(n for n in vgg.LAYERS if n in set(STYLE_LAYERS) | set(CONTENT_LAYERS))
    model = vgg.VGG19()
    cf = model.apply(variables, content, CONTENT_LAYERS)
    sf = model.apply(variables, style, STYLE_LAYERS)
    targets = losses.make_targets(cf, sf, CONTENT_LAYERS, STYLE_LAYERS)
    w = losses.Weights(jnp.float32(1.0), jnp.float32(1e-4), jnp.float32(1e4))
    hyper = optimize.Hyper(w, jnp.float32(0.01), jnp.int32(10**9))
    run_vars = vgg.with_backward_kernels(variables)

    # The compiled loop takes a batch (here of one, which runs unbatched inside).
    b_targets = targets._replace(content=jax.tree.map(lambda x: x[None], targets.content))
    b_hyper = hyper._replace(weights=jax.tree.map(lambda x: x[None], w))

    def compiled(custom):
        config = optimize.Config(
            optimizer="adam", chunk=a.steps, layers=layers, custom_grad=custom, batched_content=True
        )
        state, _ = optimize.init_state(content[None], run_vars, b_targets, b_hyper, config)

        def go():
            s = jax.tree.map(jnp.copy, state)
            t = time.perf_counter()
            s, totals, _, _ = optimize.run_chunk(s, run_vars, b_targets, b_hyper, config)
            totals.block_until_ready()
            return (time.perf_counter() - t) / a.steps

        return go

    config = optimize.Config(optimizer="adam", layers=layers)
    opt = optax.adam(0.01)

    @jax.jit
    def step(image, opt_state):
        g = jax.grad(optimize._total)(image, run_vars, targets, w, config)
        u, opt_state = opt.update(g, opt_state, image)
        return image + u, opt_state

    def python_loop():
        image, s = content, opt.init(content)
        t = time.perf_counter()
        for _ in range(a.steps):
            image, s = step(image, s)
            image.block_until_ready()  # a reporting loop looks at every step
        return (time.perf_counter() - t) / a.steps

    variants = {
        "compiled": compiled(True),
        "python_loop": python_loop,
        "compiled_autodiff": compiled(False),
    }
    for fn in variants.values():  # warm-up: compile
        fn()
    times = {k: [] for k in variants}
    for _ in range(a.repeats):
        for k, fn in variants.items():
            times[k].append(fn())
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "size": a.size,
        "steps": a.steps,
        "repeats": a.repeats,
        "device": jax.devices()[0].device_kind,
        "seconds_per_eval": med,
        "ratio_compiled_to_python_loop": med["compiled"] / med["python_loop"],
        "ratio_autodiff_to_compiled": med["compiled_autodiff"] / med["compiled"],
    }
    for k, v in med.items():
        print(f"{k:>18}: {v:.3f} s/eval")
    print(
        f"compiled / python loop = {report['ratio_compiled_to_python_loop']:.2f}; "
        f"autodiff convs / custom VJP = {report['ratio_autodiff_to_compiled']:.2f}"
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
