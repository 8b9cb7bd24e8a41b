#!/usr/bin/env python
"""Seconds per frame of jaxnst's video modes on this machine, on a synthetic clip from the bundled
images (a disc moving over a panning photo), with the warping error E against the true motion.

Sequential: every frame is its own run (frame 0 compiles; later frames reuse the program).
Multi-pass: pass 0 is one batch of all frames, then P red-black passes. Reported: wall seconds
per frame including compilation, and without it (sequential: the mean over frames >= 1).

    python scripts/bench_video.py [--size 256] [--frames 4] [--iterations 30] [--passes 2]
                                  [--pass-iterations 15] [--json out.json]
"""

import argparse
import json
import sys
import time

import jax
import numpy as np

from jaxnst.model import weights
from jaxnst.video import synthetic
from jaxnst.video.api import stylize_video


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--pass-iterations", type=int, default=15)
    ap.add_argument("--json")
    a = ap.parse_args()
    variables, _ = weights.load_variables()
    h, w = a.size * 3 // 4, a.size
    clip = synthetic.moving_object(
        a.frames, (h, w), speed=(0.5, 2.0 * a.size / 64), pan_speed=(0.0, a.size / 64)
    )
    style = synthetic.sample_image("swirls.png", a.size)
    report = {
        "size": [w, h],
        "frames": a.frames,
        "iterations": a.iterations,
        "passes": a.passes,
        "pass_iterations": a.pass_iterations,
        "device": jax.devices()[0].device_kind,
        "devices": jax.local_device_count(),
    }
    t0 = time.perf_counter()
    seq = stylize_video(clip.frames, style, variables=variables, iterations=a.iterations)
    wall = time.perf_counter() - t0
    report["sequential"] = {
        "seconds_per_frame": wall / a.frames,
        "flow_seconds": seq.flow_seconds,
        "compile_seconds": seq.compile_seconds,
        "seconds_per_frame_after_first": float(np.mean(seq.seconds[1:])) if a.frames > 1 else None,
        "E": synthetic.warping_error(seq.frames, clip),
    }
    states = []
    t0 = time.perf_counter()
    multi = stylize_video(
        clip.frames,
        style,
        variables=variables,
        iterations=a.iterations,
        passes=a.passes,
        pass_iterations=a.pass_iterations,
        on_state=states.append,
    )
    wall = time.perf_counter() - t0
    report["multipass"] = {
        "seconds_per_frame": wall / a.frames,
        "compile_seconds": multi.compile_seconds,
        "seconds_per_frame_without_compile": (wall - multi.compile_seconds) / a.frames,
        "E": synthetic.warping_error(multi.frames, clip),
    }
    report["independent"] = {"E": synthetic.warping_error(states[0].frames, clip)}
    print(json.dumps(report, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
