"""How good the CLI's time estimate is on this machine (issue 32): estimated against measured.

Usage: python scripts/bench_estimate.py [--sizes 256,512] [--iterations 20] [--json out.json]

For each size (longer side, the bundled pair, real weights, ``precision="fp32"``) it measures
the speed as the CLI does (:func:`jaxnst.cli.estimate._measure`, one compiled evaluation at
256 px, best of two), runs L-BFGS for ``--iterations`` steps once to compile and once more to
time, and prints the run's ``run_seconds`` (compilation excluded, as in the estimate), the
estimate :func:`jaxnst.cli.estimate.seconds` gives for it, their ratio (estimate / measured)
and the evaluations each counted. The speed is measured again before each size, next to the
run it predicts: the ratio then says how well the model carries a 256 px speed to other sizes
and step counts, not how busy the machine was an hour ago.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--json", default=None)
    a = p.parse_args()

    from jaxnst.cli import estimate
    from jaxnst.cli.inputs import DEMO_CONTENT, DEMO_STYLE, load_sized, sample_path
    from jaxnst.model import weights
    from jaxnst.stylize import stylize

    variables, _ = weights.load_variables(fetch=False)
    rows = []
    for size in (int(s) for s in a.sizes.split(",")):
        content = load_sized(sample_path(DEMO_CONTENT), size)
        style = load_sized(sample_path(DEMO_STYLE), size)
        kw = dict(variables=variables, iterations=a.iterations, precision="fp32")
        stylize(content, style, **kw)  # compiles
        speed = estimate._measure(variables, "fp32")
        r = stylize(content, style, **kw)
        h, w = content.shape[:2]
        est = estimate.seconds(h, w, 1, r.options, speed)
        rows.append(
            dict(
                size=[w, h],
                iterations=int(r.iterations),
                evaluations=int(r.evaluations),
                seconds_per_megapixel=speed,
                measured_s=r.run_seconds,
                estimated_s=est,
                ratio=est / r.run_seconds,
            )
        )
        print(json.dumps(rows[-1]), flush=True)
    if a.json:
        info = dict(machine=platform.processor() or platform.machine(), load=os.getloadavg())
        Path(a.json).write_text(json.dumps(dict(info, rows=rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
