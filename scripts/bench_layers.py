"""Per-layer convolution table for ``scripts/bench.py --layers`` (issue 15).

For every distinct VGG19 convolution shape at each size (forward, and the input-gradient, which is
the same SAME convolution with input and output channels swapped), time each formulation of
:mod:`jaxnst.model.convs` and report GFLOP/s, the fastest, the fraction of the matching matmul rate
(float32 for fp32, bfloat16 for bf16 and bf16x3, whose three products count), and what a plan of
the fastest per layer would cost against XLA's float32 convolution everywhere.

    python scripts/bench.py --layers --size 256 512 [--json layers.json]
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxnst.model import convs, vgg

SPECS = (
    "xla:fp32",
    "row3:fp32",
    "xla:bf16",
    "taps9:bf16",
    "row3:bf16",
    "im2col:bf16",
    "xla:bf16x3",
    "taps9:bf16x3",
    "row3:bf16x3",
    "im2col:bf16x3",
)


def conv_gflop(shape) -> float:
    h, w, c, o = shape
    return 2.0 * h * w * 9 * c * o / 1e9


def layer_table(size: int, rates: dict[str, float], specs=SPECS, reps: int = 3) -> dict:
    """Time ``specs`` at every conv shape of VGG19 (up to conv5_1) at ``size`` x ``size``."""
    shapes = convs.layer_shapes(size, size, ["conv5_1"], vgg.CHANNELS)
    seen: dict[tuple, dict[str, float]] = {}
    rows = []
    fp32_total = best_total = 0.0
    for name, (h, w, c, o) in shapes.items():
        for direction, shape in (("forward", (h, w, c, o)), ("input-grad", (h, w, o, c))):
            if shape not in seen:
                seen[shape] = {s: convs.time_conv(shape, s, reps) for s in specs}
                times = seen[shape]
                best = min(times, key=times.__getitem__)
                line = " ".join(f"{conv_gflop(shape) / times[s]:6.0f}" for s in specs)
                print(
                    f"  {name:8s} {direction:10s} {'x'.join(map(str, shape)):>16s} {line}  {best}"
                )
            times = seen[shape]
            best = min(times, key=times.__getitem__)
            fp32_total += times["xla:fp32"]
            best_total += times[best]
            rows.append(_row(name, direction, shape, times, best, rates))
    return {
        "size": size,
        "specs": list(specs),
        "layers": rows,
        "conv_seconds_xla_fp32": fp32_total,
        "conv_seconds_fastest_per_layer": best_total,
        "ratio_fastest_vs_xla_fp32": best_total / fp32_total,
    }


def _row(name, direction, shape, times, best, rates) -> dict:
    g = conv_gflop(shape)
    gflops = {s: g / t for s, t in times.items()}
    fraction = {}
    for s, r in gflops.items():
        dt = s.split(":")[1]
        fraction[s] = r * (3 if dt == "bf16x3" else 1) / rates["bf16" if "bf16" in dt else "fp32"]
    return {
        "layer": name,
        "direction": direction,
        "shape": list(shape),
        "gflop": g,
        "seconds": times,
        "gflops": gflops,
        "fraction_of_matmul": fraction,
        "fastest": best,
    }


def run(sizes, matmul_gflops) -> dict:
    """The matmul rates (fp32 and bf16, this run) and one table per size; prints as it goes."""
    rates = {"fp32": matmul_gflops(2048), "bf16": matmul_gflops(2048, dtype=jnp.bfloat16)}
    print(
        f"matmul 2048^3: fp32 {rates['fp32']:.0f} GFLOP/s, bf16 {rates['bf16']:.0f} GFLOP/s "
        f"(bf16/fp32 = {rates['bf16'] / rates['fp32']:.2f}); "
        f"CPU bf16 matrix units detected: {convs.cpu_has_bf16_units()}"
    )
    tables = []
    for size in sizes:
        print(f"{size} px, GFLOP/s per formulation: {' '.join(f'{s:>6s}' for s in SPECS)}")
        t = layer_table(size, rates)
        print(
            f"  all convolutions (forward + input-grad): XLA fp32 {t['conv_seconds_xla_fp32']:.3f}"
            f" s, fastest per layer {t['conv_seconds_fastest_per_layer']:.3f} s "
            f"(x{t['ratio_fastest_vs_xla_fp32']:.2f})",
            flush=True,
        )
        tables.append(t)
    return {"matmul_gflops": rates, "cpu": convs.cpu_model(), "tables": tables}
