"""The device check's measurements of rates and whole runs: the matmul rate at each precision,
seconds per evaluation in jaxnst's compiled loop (with the audit of what that program must not do),
``stylize`` end to end, bf16's quality against fp32's, and a batched sweep against single runs."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.bench.check import Check
from jaxnst.bench.evals import STYLE_LAYERS, make_loop, matmul_gflops
from jaxnst.bench.machine import pair
from jaxnst.loss import losses
from jaxnst.stylize import features, stylize


def measure_matmul(c: Check) -> None:
    n = c.plan.matmul_n if jax.default_backend() != "cpu" else min(c.plan.matmul_n, 2048)
    for prec, dtype, p in (
        ("fp32_highest", jnp.float32, jax.lax.Precision.HIGHEST),
        ("fp32", jnp.float32, None),
        ("bf16", jnp.bfloat16, None),
    ):

        def one(dtype=dtype, p=p, prec=prec) -> dict:
            c.rates[prec] = matmul_gflops(n, repeats=5, dtype=dtype, precision=p, calls=5)
            return {"gflops": c.rates[prec]}

        c.attempt("matmul", n, prec, 2.0 + 30 * 2 * n**3 / 1e9 / 1e5, one)
    if "fp32" in c.rates and "fp32_highest" in c.rates:
        c.data["tf32_default"] = c.rates["fp32"] > 1.5 * c.rates["fp32_highest"]


def audit(compiled, lowered) -> dict:
    """What the accelerator path must not do: float64, host callbacks or transfers in the
    compiled loop, CPU-only compiler options on another backend, x64 mode."""
    text = compiled.as_text() or ""
    config: Any = jax.config
    try:  # private attribute: the options this program was compiled with (best effort)
        opts = dict(lowered._lowering._compiler_options_kvs)
    except Exception:  # noqa: BLE001
        opts = None
    rec = {
        "backend": jax.default_backend(),
        "x64": bool(config.jax_enable_x64),
        "f64_ops": len(re.findall(r"\bf64\[", text)),
        "host_callbacks": len(re.findall(r'custom_call_target="[^"]*callback', text)),
        "host_transfers": text.count("is_host_transfer=true"),
        "compiler_options": opts,
    }
    cpu_opts = bool(opts) and any(k.startswith("xla_cpu") for k in opts or {})
    rec["ok"] = not (
        rec["x64"]
        or rec["f64_ops"]
        or rec["host_callbacks"]
        or rec["host_transfers"]
        or (cpu_opts and rec["backend"] != "cpu")
    )
    return rec


def measure_eval(c: Check, size: int, precision: str, do_audit: bool) -> None:
    p = c.plan

    def one() -> dict:
        loop = make_loop(size, c.variables, c.run_vars, p.steps, precision)
        c.saw_compile(size, loop.compile_seconds)
        loop.sample()  # warm-up
        samples = [loop.sample() for _ in range(p.samples)]
        spe, gflop = statistics.median(samples), c.gflop(size)
        c.loop_rates[precision] = max(c.loop_rates.get(precision, 0.0), gflop / spe)
        rec = {
            "seconds_per_eval": spe,
            "seconds_per_eval_min": min(samples),
            "compile_seconds": loop.compile_seconds,
            "gflop_per_eval": gflop,
            "gflops": gflop / spe,
            "steps_per_sample": p.steps,
            "samples": samples,
        }
        if precision in c.rates:
            rec["fraction_of_matmul"] = gflop / spe / c.rates[precision]
        if precision == "fp32" and "fp32_highest" in c.rates:
            rec["fraction_of_fp32_highest"] = gflop / spe / c.rates["fp32_highest"]
        if do_audit:
            c.add(
                {
                    "name": "audit",
                    "size": size,
                    "precision": precision,
                    **audit(loop.compiled, loop.lowered),
                }
            )
        return rec

    need = c.compile_guess(size) + (p.samples + 1) * p.steps * c.eval_guess(size, precision) + 2
    c.attempt("eval", size, precision, need, one)


def _final(res) -> dict:
    h = res.history
    return {f"final_{k}": float(np.asarray(h[k])[-1]) for k in ("total", "content", "style", "tv")}


def measure_end_to_end(c: Check) -> None:
    p = c.plan

    def one() -> dict:
        content, style = pair(p.e2e_size)
        t = time.perf_counter()
        res = stylize(content, style, variables=c.variables, iterations=p.e2e_iterations)
        wall = time.perf_counter() - t
        c.e2e_done = True  # its compiled program serves the fp32 runs of quality and sweep
        return {
            "wall_seconds": wall,
            "compile_seconds": res.compile_seconds,
            "run_seconds": res.run_seconds,
            "iterations": res.iterations,
            "evaluations": res.evaluations,
            "image_shape": list(content.shape),
            **_final(res),
        }

    need = 1.5 * c.compile_guess(p.e2e_size) + 1.5 * p.e2e_iterations * c.eval_guess(p.e2e_size)
    c.attempt("end_to_end", p.e2e_size, "fp32", need + 3, one, optimizer="lbfgs")


def measure_quality(c: Check) -> None:
    p = c.plan

    def one() -> dict:
        content, style = pair(p.e2e_size)
        out = {}
        for prec in ("fp32", "bf16"):
            res = stylize(
                content,
                style,
                variables=c.variables,
                precision=prec,
                iterations=p.quality_iterations,
            )
            out[prec] = res
        f32, b16 = (float(np.asarray(out[k].history["style"])[-1]) for k in ("fp32", "bf16"))
        # The bf16 result scored by the fp32 network: its loss without bf16's measuring error.
        grams = {
            n: losses.gram(f)
            for n, f in features(style, STYLE_LAYERS, variables=c.variables).items()
        }
        feats = features(out["bf16"].image, STYLE_LAYERS, variables=c.variables)
        scored = float(losses.style_loss(feats, grams))
        rel = (b16 - f32) / f32
        return {
            "iterations": p.quality_iterations,
            "style_loss_fp32": f32,
            "style_loss_bf16": b16,
            "style_rel_diff": rel,
            "passes": abs(rel) <= 0.02,
            "style_loss_bf16_scored_fp32": scored,
            "scored_rel_diff": (scored - f32) / f32,
            "total_loss_fp32": float(np.asarray(out["fp32"].history["total"])[-1]),
            "total_loss_bf16": float(np.asarray(out["bf16"].history["total"])[-1]),
            "wall_seconds_bf16": out["bf16"].compile_seconds + out["bf16"].run_seconds,
        }

    need = c.compile_guess(p.e2e_size) * (
        1.5 if c.e2e_done else 3.0
    ) + 3 * p.quality_iterations * c.eval_guess(p.e2e_size)
    c.attempt("quality_bf16", p.e2e_size, "bf16", need + 3, one, bar=0.02)


def measure_sweep(c: Check) -> None:
    p = c.plan

    def one() -> dict:
        content, style = pair(p.e2e_size)
        ws = [float(w) for w in np.geomspace(1e-4, 1e-3, p.sweep_n)]
        kw: dict[str, Any] = dict(variables=c.variables, iterations=p.sweep_iterations)
        singles = [stylize(content, style, style_weight=w, **kw) for w in ws]
        batch = stylize(content, style, style_weight=tuple(ws), **kw)
        s_run, s_comp = (
            sum(getattr(r, k) for r in singles) for k in ("run_seconds", "compile_seconds")
        )
        b_wall = batch.run_seconds + batch.compile_seconds
        return {
            "n": p.sweep_n,
            "iterations": p.sweep_iterations,
            "wall_seconds": b_wall,
            "run_seconds": batch.run_seconds,
            "compile_seconds": batch.compile_seconds,
            "singles_run_seconds": s_run,
            "singles_compile_seconds": s_comp,
            "ratio": batch.run_seconds / s_run,
            "ratio_with_compile": b_wall / (s_run + s_comp),
            "singles_evaluations": int(sum(r.evaluations for r in singles)),
            "batch_evaluations": int(batch.batch_evaluations) * p.sweep_n,
        }

    need = 2.5 * c.compile_guess(p.e2e_size) + 3 * p.sweep_n * p.sweep_iterations * c.eval_guess(
        p.e2e_size
    )
    c.attempt("sweep", p.e2e_size, "fp32", need + 3, one)
