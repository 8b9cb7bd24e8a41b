"""Time every candidate convolution form on this CPU for the layer keys of common photo sizes and
print an entry for ``jaxnst/model/conv_defaults.py`` (issue 33): ``python scripts/conv_defaults.py
[--sizes 128x128 ...] [--out entry.json]``. Run it with the machine otherwise idle."""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax

from jaxnst.model import convs
from jaxnst.model.layers import LAYERS

CHANNELS = (64, 128, 256, 512, 512)  # VGG19's widths
SIZES = ("128x128", "192x128", "256x256", "384x256", "384x384", "512x384", "512x512", "768x512")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), help="HxW images whose keys to time")
    ap.add_argument("--out", help="also write the entry here (JSON)")
    a = ap.parse_args()
    needs: dict[str, convs._Need] = {}
    for size in a.sizes:
        h, w = map(int, size.split("x"))
        for pair in convs._needs(h, w, LAYERS[-1:], CHANNELS, convs.CANDIDATES):
            for n in pair:
                needs.setdefault(n.key, n)
    cpu = convs.cpu_info()
    t0 = time.perf_counter()
    timings = {}
    for key, n in sorted(needs.items(), key=lambda kv: kv[0]):
        shape = convs._timed_shape(n)
        timings[key] = {s: round(convs.time_conv(shape, s), 6) for s in convs.CANDIDATES}
        best = min(timings[key], key=timings[key].__getitem__)
        ratio = (
            min(v for s, v in timings[key].items() if s != convs.FP32) / timings[key][convs.FP32]
        )
        print(f"{key:>14} {shape}: {best:<14} best bf16x3 / fp32 = {ratio:.2f}", flush=True)
    entry = {
        "vendor": cpu.vendor,
        "family": cpu.family,
        "flags": sorted(cpu.flags & convs.BF16_FLAGS),
        "absent": sorted(convs.BF16_FLAGS - cpu.flags - {"bf16"}),
        "measured": f"{convs.cpu_id(cpu)}, model {cpu.model}, {platform.node()}, jax "
        f"{jax.__version__}, {time.strftime('%Y-%m-%d')}, {time.perf_counter() - t0:.0f} s",
        "timings": timings,
    }
    text = json.dumps(entry, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
