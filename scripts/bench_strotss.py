"""Seconds per evaluation (loss and gradient) of the STROTSS terms against Gatys's objective.

    python scripts/bench_strotss.py --size 256 [--json out.json]

One compiled ``value_and_grad`` of :func:`jaxnst.objective` per configuration on the bundled pair,
best of three after compiling: Gatys, the self-similarity content term alone, REMD alone, and
both (``method="strotss"``'s objective). The sampled terms cost the same at every size (they
count points, not pixels); ``jaxnst.cli.estimate`` adds them to its time line from these numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax

import jaxnst
from jaxnst import image_io

SAMPLES = Path(__file__).resolve().parents[1] / "jaxnst" / "samples"
CONFIGS = {
    "gatys": {},
    "self_similarity": {"content_loss": "self_similarity"},
    "remd": {"style_loss": "remd"},
    "strotss": {"style_loss": "remd", "content_loss": "self_similarity"},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=256, help="longer side, px (default 256)")
    p.add_argument("--repeats", type=int, default=3, help="timed evaluations (best is kept)")
    p.add_argument("--json", help="write the numbers here too")
    a = p.parse_args()
    content = image_io.resize(image_io.load(SAMPLES / "chelsea.jpg"), a.size)
    style = image_io.resize(image_io.load(SAMPLES / "swirls.png"), a.size)
    step = jax.jit(lambda f, x: f(x))
    rows = {}
    for name, kw in CONFIGS.items():
        obj = jaxnst.objective(content, style, precision="fp32", **kw)
        t = time.perf_counter()
        jax.block_until_ready(step(obj.value_and_grad, obj.init_image))
        first = time.perf_counter() - t
        best = float("inf")
        for _ in range(a.repeats):
            t = time.perf_counter()
            jax.block_until_ready(step(obj.value_and_grad, obj.init_image))
            best = min(best, time.perf_counter() - t)
        rows[name] = {"seconds_per_evaluation": best, "compile_and_first_seconds": first}
        print(f"{name:16s} {best:7.3f} s per evaluation ({first:.1f} s compiling and the first)")
    base = rows["gatys"]["seconds_per_evaluation"]
    for r in rows.values():
        r["ratio_to_gatys"] = r["seconds_per_evaluation"] / base
    report = {
        "size": list(content.shape[:2]),
        "cpu": platform.processor() or platform.machine(),
        "backend": jax.default_backend(),
        "rows": rows,
    }
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
