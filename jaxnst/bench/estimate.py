"""How good the CLI's time estimate is on this machine (issue 32), ``scripts/bench.py
--estimate``: estimated against measured.

For each size (longer side, the bundled pair, real weights, ``precision="fp32"``) it measures the
speed as the CLI does (:func:`jaxnst.cli.estimate._measure`, one compiled evaluation at 256 px,
best of two), runs L-BFGS for ``iterations`` steps once to compile and once more to time, and
reports the run's ``run_seconds`` (compilation excluded, as in the estimate), the estimate
:func:`jaxnst.cli.estimate.seconds` gives for it, their ratio (estimate / measured) and the
evaluations each counted. The speed is measured again before each size, next to the run it
predicts: the ratio then says how well the model carries a 256 px speed to other sizes and step
counts, not how busy the machine was an hour ago.
"""

from __future__ import annotations

import json
import os
from typing import Any


def run(sizes: list[int], iterations: int, variables: dict) -> dict:
    from jaxnst.cli import estimate
    from jaxnst.cli.inputs import DEMO_CONTENT, DEMO_STYLE, load_sized, sample_path
    from jaxnst.stylize import stylize

    rows = []
    for size in sizes:
        content = load_sized(sample_path(DEMO_CONTENT), size)
        style = load_sized(sample_path(DEMO_STYLE), size)
        kw: dict[str, Any] = dict(variables=variables, iterations=iterations, precision="fp32")
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
    return dict(load=os.getloadavg(), rows=rows)
