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

Against DPST's own published results (issue 30's bar), from a checkout of
luanfujun/deep-photo-styletransfer (its images are not ours to commit: keep them outside)::

    python scripts/compare_photoreal.py --dpst DPST/examples --dpst-pairs 1,3 \\
        --kinds gatys,photoreal,smoothed --size 384 --folder /tmp/dpst/runs \\
        --json /tmp/dpst/dpst384.json --out /tmp/dpst/dpst384.jpg -- --iterations 100

For each example N it writes ``inN_{size}_{content,style,content_seg,style_seg,dpst}.png`` into
``--folder``: ``input/inN.png``, ``style/tarN.png`` and ``final_results/bestN_t_1000.png``
resized (Lanczos) to ``--size`` on the longer side, and ``segmentation/inN.png`` and ``tarN.png``
made flat (:func:`snap_labels`: DPST's files are anti-aliased) and resized by nearest neighbours.
Photoreal runs with both labels, Gatys without (the plain method, as for ``--pairs``). The style
loss scored is the plain (unguided) Gram loss for every result, DPST's included. It prints, per
pair, issue 30's ratios (:func:`ratios`): ours / DPST's unexplained share (the bar: <= 1) and
style loss (<= 1.2), and Gatys' / ours unexplained share (>= 3).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

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


# The nine colours DPST's code reads (deepmatting_seg.lua's ExtractMask: each channel within 0.1
# of 0 or 1, grey within 0.1 of 0.5); its segmentation PNGs are anti-aliased at the edges.
DPST_COLOURS = np.array(
    [[0, 0, 255], [0, 255, 0], [0, 0, 0], [255, 255, 255], [255, 0, 0], [255, 255, 0],
     [128, 128, 128], [0, 255, 255], [255, 0, 255]],
    np.uint8,
)  # fmt: skip


def snap_labels(labels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 labels in flat colours, as ``--content-labels`` wants: a pixel within
    DPST's thresholds of one of :data:`DPST_COLOURS` takes it; any other (DPST's anti-aliased
    edges, which its masks leave out of every region) takes the nearest colour among those found
    that way, so that an edge between black and white does not become a grey region."""
    rgb = labels[..., :3].astype(np.int32)
    near = np.abs(rgb[..., None, :] - DPST_COLOURS.astype(np.int32)).max(-1) < 26  # 0.1 * 255
    found = near.any(axis=tuple(range(near.ndim - 1)))
    if not found.any():
        raise ValueError("no pixel is one of DPST's nine label colours")
    d = ((rgb[..., None, :] - DPST_COLOURS.astype(np.int32)) ** 2).sum(-1)
    d = np.where(near, -1, np.where(found, d, np.iinfo(np.int32).max))
    return DPST_COLOURS[d.argmin(-1)]


def dpst_pairs(repo: Path, numbers: list[int], size: int, folder: Path) -> dict[str, dict]:
    """DPST's examples N (``input/inN.png``, ``style/tarN.png``, ``segmentation/inN.png`` and
    ``tarN.png``, ``final_results/bestN_t_1000.png``), each resized to ``size`` px on its longer
    side into ``folder`` (photos by Lanczos, labels by nearest neighbours to keep their colours)."""
    from PIL import Image

    out = {}
    for n in numbers:
        files = {
            "content": repo / "input" / f"in{n}.png",
            "style": repo / "style" / f"tar{n}.png",
            "content_seg": repo / "segmentation" / f"in{n}.png",
            "style_seg": repo / "segmentation" / f"tar{n}.png",
            "dpst": repo / "final_results" / f"best{n}_t_1000.png",
        }
        pair = {}
        for key, src in files.items():
            dst = folder / f"in{n}_{size}_{key}.png"
            if not dst.exists():
                with Image.open(src) as f:
                    im = f.convert("RGB")
                s = size / max(im.size)
                shape = (round(im.width * s), round(im.height * s))
                if key.endswith("_seg"):
                    im = Image.fromarray(snap_labels(np.asarray(im)))
                    im = im.resize(shape, Image.Resampling.NEAREST)
                else:
                    im = im.resize(shape, Image.Resampling.LANCZOS)
                im.save(dst)
            pair[key] = dst
        out[f"in{n}"] = pair
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


def ratios(table: dict) -> dict[str, dict[str, float | None]]:
    """Issue 30's bar per pair, from :func:`score`'s table: ours (photoreal) / DPST's published
    unexplained share and style loss (the bar: at most 1 and 1.2), and Gatys / ours unexplained
    share (at least 3); the same two for ours smoothed (``--photoreal-smooth``); None where a
    result is missing."""

    def over(row: dict, a: str, b: str, key: str) -> float | None:
        if a not in row or b not in row or not row[b][key]:
            return None
        return row[a][key] / row[b][key]

    return {
        name: {
            "unexplained_ours_over_dpst": over(row, "photoreal", "dpst", "unexplained_share"),
            "style_ours_over_dpst": over(row, "photoreal", "dpst", "style_loss"),
            "unexplained_gatys_over_ours": over(row, "gatys", "photoreal", "unexplained_share"),
            "unexplained_smoothed_over_dpst": over(row, "smoothed", "dpst", "unexplained_share"),
            "style_smoothed_over_dpst": over(row, "smoothed", "dpst", "style_loss"),
        }
        for name, row in table.items()
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", help="folder of NAME_content.*, NAME_style.* ...")
    p.add_argument("--dpst", help="DPST's examples/ folder (input/, style/, segmentation/, ...)")
    p.add_argument("--dpst-pairs", default="1,3,4,9", help="with --dpst: its examples N")
    p.add_argument("--kinds", default=",".join(KINDS), help="which of our results to run")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--smooth", type=float, default=1e3, help="--photoreal-smooth's lambda'")
    p.add_argument("--folder", default="photoreal_runs", help="where the results go")
    p.add_argument("--out", help="a side-by-side figure (.jpg)")
    p.add_argument("--json", help="the table as JSON")
    p.add_argument("extra", nargs="*", help="more jaxnst flags for every run (after --)")
    args = p.parse_args(argv)
    if bool(args.pairs) == bool(args.dpst):
        p.error("give one of --pairs and --dpst")
    args.kinds = [k for k in args.kinds.split(",") if k]
    if set(args.kinds) - set(KINDS):
        p.error(f"--kinds: some of {','.join(KINDS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    if args.dpst:
        numbers = [int(n) for n in args.dpst_pairs.split(",")]
        todo = dpst_pairs(Path(args.dpst), numbers, args.size, folder)
    else:
        todo = pairs(Path(args.pairs))
    table: dict[str, dict] = {}
    rows: list[list[Path]] = []
    for name, pair in todo.items():
        table[name], row = {}, [pair["content"], pair["style"]]
        for kind in args.kinds:
            stem = run(kind, args, name, pair, folder)
            report = json.loads(stem.with_suffix(".json").read_text())
            png = stem.with_suffix(".png")
            table[name][kind] = score(pair["content"], pair["style"], png, args.size) | {
                "wall_seconds": report["wall_seconds"],
                "iterations": report.get("iterations"),
                "labels_left_out": report.get("labels_left_out"),
            }
            row.append(png)
        if pair["dpst"]:
            table[name]["dpst"] = score(pair["content"], pair["style"], pair["dpst"], args.size)
            row.append(pair["dpst"])
        table[name]["ratios"] = ratios({name: table[name]})[name]
        print(name, json.dumps(table[name]), flush=True)
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1) + "\n")
    if args.out and rows:
        figure(rows, Path(args.out))
    for name, result in table.items():
        bar = result["ratios"].items()
        print(name, ", ".join(f"{k} {v:.3g}" for k, v in bar if v is not None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
