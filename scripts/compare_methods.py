"""Gatys against STROTSS, side by side: (content, style,) Gatys, STROTSS for each pair.

    python scripts/compare_methods.py --size 512 --images DIR \\
        --out docs/strotss_compare.jpg --json docs/strotss_compare.json

Each result is one ``jaxnst`` command line (defaults, plus ``--method strotss`` for STROTSS), run
in a subprocess so that its seconds are the CLI's own (``--json``: wall and compile seconds).
``--reuse DIR`` takes finished results from DIR instead (``{method}{size}_{pair}.png`` and
``.json``, as these commands write them), so an interrupted comparison is not run twice. The
pairs: the bundled cat and swirls, and with ``--images`` tubingen x starry_night and
tubingen x the_scream.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "jaxnst" / "samples"


def pairs(images: str | None) -> dict[str, tuple[Path, Path]]:
    out = {"bundled": (SAMPLES / "chelsea.jpg", SAMPLES / "swirls.png")}
    if images:
        d = Path(images)
        out["tubingen"] = (d / "tubingen.jpg", d / "starry_night.jpg")
        out["scream"] = (d / "tubingen.jpg", d / "the_scream.jpg")
    return out


def run(method: str, size: int, name: str, content: Path, style: Path, folder: Path) -> Path:
    stem = folder / f"{method}{size}_{name}"
    if stem.with_suffix(".png").exists() and stem.with_suffix(".json").exists():
        return stem
    cmd = [sys.executable, "-m", "jaxnst.cli", str(content), str(style), "--size", str(size)]
    cmd += ["-o", str(stem.with_suffix(".png")), "--json", str(stem.with_suffix(".json"))]
    if method == "strotss":
        cmd += ["--method", "strotss"]
    print(" ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return stem


def tile(path: Path, height: int) -> Image.Image:
    im = Image.open(path).convert("RGB")
    return im.resize((round(im.width * height / im.height), height), Image.LANCZOS)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=512, help="longer side of the results, px")
    p.add_argument("--images", help="folder with tubingen.jpg, starry_night.jpg, the_scream.jpg")
    p.add_argument("--reuse", default="/tmp/compare_methods", help="results folder (kept)")
    p.add_argument("--row-height", type=int, default=256, help="px of each row in the figure")
    p.add_argument("--out", required=True, help="the figure (JPEG)")
    p.add_argument("--json", help="seconds and losses of every run")
    a = p.parse_args()
    folder = Path(a.reuse)
    folder.mkdir(parents=True, exist_ok=True)
    rows, report = [], {}
    for name, (content, style) in pairs(a.images).items():
        stems = {m: run(m, a.size, name, content, style, folder) for m in ("gatys", "strotss")}
        report[name] = {}
        for m, stem in stems.items():
            r = json.loads(stem.with_suffix(".json").read_text())
            keys = ("wall_seconds", "compile_seconds", "run_seconds", "iterations", "evaluations")
            report[name][m] = {k: r.get(k) for k in keys}
        # Only the bundled (credited) images themselves go into the figure; of the shared ones,
        # which are not ours to publish, only the results, with their names.
        inputs = [content, style] if name == "bundled" else []
        cells = [tile(p, a.row_height) for p in inputs]
        cells += [tile(stems[m].with_suffix(".png"), a.row_height) for m in ("gatys", "strotss")]
        heads = ["content", "style"] if inputs else []
        pair = "" if inputs else f"{content.stem} x {style.stem}, "
        secs = {m: report[name][m]["wall_seconds"] for m in ("gatys", "strotss")}
        heads += [f"{pair}{m}: {s:.0f} s" for m, s in secs.items()]
        rows.append((cells, heads))
    width = max(sum(c.width for c in cells) + 8 * (len(cells) - 1) for cells, _ in rows)
    label = 18
    fig = Image.new("RGB", (width, len(rows) * (a.row_height + label + 8)), "white")
    draw = ImageDraw.Draw(fig)
    y = 0
    for cells, texts in rows:
        x = 0
        for c, t in zip(cells, texts):
            draw.text((x + 4, y + 2), t, fill="black")
            fig.paste(c, (x, y + label))
            x += c.width + 8
        y += a.row_height + label + 8
    fig.save(a.out, quality=88)
    print(f"wrote {a.out} ({Path(a.out).stat().st_size / 1e6:.2f} MB)")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
    for name, rep in report.items():
        line = ", ".join(f"{m} {v['wall_seconds']:.0f} s" for m, v in rep.items())
        print(f"{name}: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
