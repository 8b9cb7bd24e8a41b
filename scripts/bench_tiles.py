"""Seconds per evaluation, tiled against untiled (issue 22's "faster tiles" table).

Usage: python scripts/bench_tiles.py --images DIR [--sizes 1024,2048] [--tiles 0,512,256]
       [--json out.json] [--weights vgg19.h5]

For each size (longer side; tubingen.jpg and starry_night.jpg from DIR, else the bundled pair)
and tile size (0: untiled) it runs Adam once to compile (and, with ``precision="auto"``, to time
the convolution forms), then for 1 and for 3 iterations (one evaluation per step, so the
difference of their ``run_seconds`` is 2 evaluations, without compiling or the targets) and
prints seconds per evaluation, per megapixel and the tiled overhead against the untiled run at
the same size. A configuration the memory preflight refuses is reported as such, not run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _pair(images: str | None, size: int):
    from jaxnst.cli.inputs import load_sized

    d = Path(images) if images else None
    if d is not None and (d / "tubingen.jpg").is_file():
        c, s = d / "tubingen.jpg", d / "starry_night.jpg"
    else:
        c, s = ROOT / "jaxnst/samples/chelsea.jpg", ROOT / "jaxnst/samples/swirls.png"
    return load_sized(c, size), load_sized(s, size)


def _run(content, style, variables, tile: int | None, n: int) -> float:
    from jaxnst.stylize import stylize

    r = stylize(
        content, style, variables=variables, optimizer="adam", iterations=n, chunk=n, tile=tile
    )
    return r.run_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", help="folder with tubingen.jpg and starry_night.jpg")
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--tiles", default="0,512,256", help="tile sizes, 0: untiled")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from jaxnst.model import vgg, weights
    from jaxnst.pipeline import memory
    from jaxnst.pipeline.options import make_options

    variables, _ = weights.load_variables(a.weights)
    rows = []
    for size in (int(x) for x in a.sizes.split(",")):
        content, style = _pair(a.images, size)
        h, w = content.shape[:2]
        untiled = None
        for tile in (int(x) for x in a.tiles.split(",")):
            t = tile or None
            row = {"size": size, "width": w, "height": h, "tile": t}
            try:
                memory.check(h, w, 1, make_options(tile=t), vgg.channels_of(variables))
            except memory.MemoryRefused as e:
                rows.append(row | {"refused": str(e)})
                print(json.dumps(rows[-1]), flush=True)
                continue
            _run(content, style, variables, t, 1)  # compiles; times the forms once
            t0 = time.perf_counter()
            one = _run(content, style, variables, t, 1)
            three = _run(content, style, variables, t, 3)
            per_eval = (three - one) / 2
            row |= {
                "seconds_per_evaluation": round(per_eval, 3),
                "seconds_per_megapixel": round(per_eval / (h * w / 1e6), 3),
                "wall_s": round(time.perf_counter() - t0, 1),
            }
            if t is None:
                untiled = per_eval
            elif untiled:
                row["overhead"] = round(per_eval / untiled, 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if a.json:
        Path(a.json).write_text(
            json.dumps({"cpu": platform.processor() or platform.machine(), "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
