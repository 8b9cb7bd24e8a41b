"""Gatys against photoreal (Luan et al. 2017) and photoreal with smoothing, on photo pairs, scored
with issue 30's measure.

    python scripts/compare_photoreal.py --pairs DIR --size 512 \\
        --out docs/photoreal_compare.jpg --json docs/photoreal_compare.json

DIR holds, for each pair NAME: ``NAME_content.*`` and ``NAME_style.*`` (.jpg or .png), optionally
``NAME_content_seg.png`` and ``NAME_style_seg.png`` (DPST's colour-coded labels) and
``NAME_dpst.*`` (a published DPST result, scored as well). Each result is one ``jaxnst`` command
in a subprocess, so its seconds are the CLI's own (``--json``): the defaults (Gatys),
``--method photoreal`` (with the labels when there are some), and the same with
``--photoreal-smooth`` (``--smooth``, default 1e3). Every result, DPST's included, is scored the
same way: the share of its local detail that no local affine recolouring of the content explains
(:func:`jaxnst.loss.matting.unexplained_share`, the content resized to the result's size) and
the plain Gram style loss against the style at ``--size`` (:func:`jaxnst.objective`'s parts).
Finished results in the output folder are reused (``{kind}{size}_{pair}.png`` and ``.json``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("gatys", "photoreal", "smoothed")


def find(folder: Path, stem: str) -> Path | None:
    for ext in (".png", ".jpg", ".jpeg"):
        if (folder / (stem + ext)).exists():
            return folder / (stem + ext)
    return None


def pairs(folder: Path) -> dict[str, dict[str, Path | None]]:
    out = {}
    for c in sorted(folder.glob("*_content.*")):
        name = c.name.rsplit("_content.", 1)[0]
        style = find(folder, name + "_style")
        if style is None:
            continue
        out[name] = {
            "content": c,
            "style": style,
            "content_seg": find(folder, name + "_content_seg"),
            "style_seg": find(folder, name + "_style_seg"),
            "dpst": find(folder, name + "_dpst"),
        }
    return out


def run(kind: str, args: argparse.Namespace, name: str, pair: dict, folder: Path) -> Path:
    stem = folder / f"{kind}{args.size}_{name}"
    if stem.with_suffix(".png").exists() and stem.with_suffix(".json").exists():
        return stem
    cmd = [sys.executable, "-m", "jaxnst.cli", str(pair["content"]), str(pair["style"])]
    cmd += ["--size", str(args.size), "-o", str(stem.with_suffix(".png"))]
    cmd += ["--json", str(stem.with_suffix(".json")), "--quiet", *args.extra]
    if kind != "gatys":
        cmd += ["--method", "photoreal"]
        if pair["content_seg"] and pair["style_seg"]:
            cmd += ["--content-labels", str(pair["content_seg"])]
            cmd += ["--style-labels", str(pair["style_seg"])]
    if kind == "smoothed":
        cmd += ["--photoreal-smooth", str(args.smooth)]
    print(" ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return stem


def score(content: Path, style: Path, image: Path, size: int) -> dict[str, float]:
    """The measure and the plain Gram style loss of ``image`` (any size: scored at its own)."""
    import jaxnst
    from jaxnst import image_io
    from jaxnst.loss import matting

    out = image_io.load(image)
    c = image_io.resize(image_io.load(content), shape=out.shape[:2])
    s = image_io.resize(image_io.load(style), max(out.shape[:2]))
    _, parts = jaxnst.objective(c, s).loss_fn(out)
    return {
        "unexplained_share": float(matting.unexplained_share(c, out)),
        "style_loss": float(parts.style),
        "size": [out.shape[1], out.shape[0]],
    }


def figure(rows: list[list[Path]], path: Path, height: int = 256) -> None:
    from PIL import Image

    tiles = [[Image.open(p).convert("RGB") for p in row] for row in rows]
    tiles = [[t.resize((round(t.width * height / t.height), height)) for t in r] for r in tiles]
    width = max(sum(t.width for t in r) for r in tiles)
    sheet = Image.new("RGB", (width, height * len(tiles)), "white")
    for i, r in enumerate(tiles):
        x = 0
        for t in r:
            sheet.paste(t, (x, i * height))
            x += t.width
    sheet.save(path, quality=90)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", required=True, help="folder of NAME_content.*, NAME_style.* ...")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--smooth", type=float, default=1e3, help="--photoreal-smooth's lambda'")
    p.add_argument("--folder", default="photoreal_runs", help="where the results go")
    p.add_argument("--out", help="a side-by-side figure (.jpg)")
    p.add_argument("--json", help="the table as JSON")
    p.add_argument("extra", nargs="*", help="more jaxnst flags for every run (after --)")
    args = p.parse_args(argv)
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    table, rows = {}, []
    for name, pair in pairs(Path(args.pairs)).items():
        table[name], row = {}, [pair["content"], pair["style"]]
        for kind in KINDS:
            stem = run(kind, args, name, pair, folder)
            report = json.loads(stem.with_suffix(".json").read_text())
            png = stem.with_suffix(".png")
            table[name][kind] = score(pair["content"], pair["style"], png, args.size) | {
                "wall_seconds": report["wall_seconds"],
                "labels_left_out": report.get("labels_left_out"),
            }
            row.append(png)
        if pair["dpst"]:
            table[name]["dpst"] = score(pair["content"], pair["style"], pair["dpst"], args.size)
            row.append(pair["dpst"])
        print(name, json.dumps(table[name]), flush=True)
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1) + "\n")
    if args.out and rows:
        figure(rows, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
