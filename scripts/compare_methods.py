"""Gatys, STROTSS and NNST side by side: (content, style,) one result per method for each pair,
optionally scored by an independent judge.

    python scripts/compare_methods.py --size 512 --images DIR \\
        --out docs/strotss_compare.jpg --json docs/strotss_compare.json
    python scripts/compare_methods.py --size 256 --images DIR --judge \\
        --out /tmp/compare256.jpg --json /tmp/compare256.json

Each result is one ``jaxnst`` command line (defaults, plus ``--method strotss`` or ``--method
nnst``), run in a subprocess so that its seconds are the CLI's own (``--json``: wall and compile
seconds). ``--methods`` picks which (default all three, in that order); ``--iterations`` passes
the CLI's own (each method's default otherwise; results then get an ``_itN`` suffix).
``--reuse DIR`` takes finished results from DIR instead (``{method}{size}_{pair}.png`` and
``.json``, as these commands write them), so an interrupted comparison is not run twice. The
pairs: the bundled cat and swirls, and with ``--images`` tubingen x starry_night and
tubingen x the_scream.

``--judge`` scores every result after all the runs (so the judge's work never overlaps a timed
run) with :mod:`jaxnst.bench.judge`: a STROTSS-style judge under the trained VGG19, in NumPy,
written apart from the STROTSS loss. Content and style are resized to the result's longer side
(the CLI's ``style_scale`` 1.0), ``--judge-samples`` positions per image, ``--judge-seed``. The
JSON then holds, per pair and method, ``relaxed_emd`` (to the style) and
``self_similarity_error`` (to the content) beside ``seconds`` (the run's wall seconds), and per
pair a ``reference``: the content itself scored as a result (self-similarity error 0, and the
relaxed EMD a result starts from).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "jaxnst" / "samples"
METHODS = ("gatys", "strotss", "nnst")
KEYS = ("wall_seconds", "compile_seconds", "run_seconds", "iterations", "evaluations")


def pairs(images: str | None) -> dict[str, tuple[Path, Path]]:
    out = {"bundled": (SAMPLES / "chelsea.jpg", SAMPLES / "swirls.png")}
    if images:
        d = Path(images)
        out["tubingen"] = (d / "tubingen.jpg", d / "starry_night.jpg")
        out["scream"] = (d / "tubingen.jpg", d / "the_scream.jpg")
    return out


def run(
    method: str,
    size: int,
    name: str,
    content: Path,
    style: Path,
    folder: Path,
    iterations: int | None = None,
    extra: tuple[str, ...] = (),
) -> Path:
    suffix = f"_it{iterations}" if iterations else ""
    stem = folder / f"{method}{size}_{name}{suffix}"
    if stem.with_suffix(".png").exists() and stem.with_suffix(".json").exists():
        return stem
    cmd = [sys.executable, "-m", "jaxnst.cli", str(content), str(style), "--size", str(size)]
    cmd += ["-o", str(stem.with_suffix(".png")), "--json", str(stem.with_suffix(".json"))]
    if method != "gatys":
        cmd += ["--method", method]
    if iterations:
        cmd += ["--iterations", str(iterations)]
    cmd += list(extra)
    print(" ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return stem


def tile(path: Path, height: int) -> Image.Image:
    im = Image.open(path).convert("RGB")
    return im.resize((round(im.width * height / im.height), height), Image.Resampling.LANCZOS)


def judge_all(
    todo: dict[str, tuple[Path, Path, dict[str, Path]]], report: dict, a: argparse.Namespace
) -> None:
    """Score every result of ``todo`` (pair -> content, style, {method: stem}) into ``report``
    (and the content itself, as the pair's ``reference``)."""
    from jaxnst import image_io
    from jaxnst.bench import judge, machine

    chosen, info = machine.weights_info(a.weights)
    if chosen in ("random", "small"):
        raise SystemExit("compare_methods: --judge needs the VGG19 weights (jaxnst.weights fetch)")
    variables = machine.load_weights(chosen)
    print(f"judging with {info['kind']} weights, {a.judge_samples} samples, seed {a.judge_seed}")
    for name, (content_path, style_path, stems) in todo.items():
        content, style = image_io.load(content_path), image_io.load(style_path)
        content, style = image_io.resize(content, a.size), image_io.resize(style, a.size)
        images = {m: image_io.load(s.with_suffix(".png")) for m, s in stems.items()}
        images["reference"] = content
        for m, result in images.items():
            t = time.perf_counter()
            score = judge.judge(content, style, result, variables, a.judge_samples, a.judge_seed)
            entry = report[name].setdefault(m, {})
            entry.update(
                relaxed_emd=score.relaxed_emd,
                self_similarity_error=score.self_similarity_error,
                judge_samples=score.samples,
                judge_seed=score.seed,
                judge_seconds=time.perf_counter() - t,
            )
            print(
                f"{name} {m}: relaxed EMD {score.relaxed_emd:.4f}, self-similarity error "
                f"{score.self_similarity_error:.4f}",
                flush=True,
            )


def figure(rows: list, row_height: int, out: str) -> None:
    """Rows of (cells, heads): each cell under its head (a line or two), one row per pair."""
    width = max(sum(c.width for c in cells) + 8 * (len(cells) - 1) for cells, _ in rows)
    label = 14 * max(t.count("\n") + 1 for _, heads in rows for t in heads) + 4
    fig = Image.new("RGB", (width, len(rows) * (row_height + label + 8)), "white")
    draw = ImageDraw.Draw(fig)
    y = 0
    for cells, texts in rows:
        x = 0
        for c, t in zip(cells, texts):
            draw.multiline_text((x + 4, y + 2), t, fill="black")
            fig.paste(c, (x, y + label))
            x += c.width + 8
        y += row_height + label + 8
    fig.save(out, quality=88)
    print(f"wrote {out} ({Path(out).stat().st_size / 1e6:.2f} MB)")


def head(pair: str, method: str, entry: dict) -> str:
    text = f"{pair}{method}: {entry['wall_seconds']:.0f} s"
    if "relaxed_emd" in entry:
        text += f"\nREMD {entry['relaxed_emd']:.3f}, self-sim {entry['self_similarity_error']:.3f}"
    return text


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=512, help="longer side of the results, px")
    p.add_argument("--images", help="folder with tubingen.jpg, starry_night.jpg, the_scream.jpg")
    p.add_argument("--reuse", default="/tmp/compare_methods", help="results folder (kept)")
    p.add_argument("--row-height", type=int, default=256, help="px of each row in the figure")
    p.add_argument("--out", required=True, help="the figure (JPEG)")
    p.add_argument("--json", help="seconds and losses of every run (and the judge's scores)")
    p.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), help="which, in order"
    )
    p.add_argument("--iterations", type=int, help="the CLI's --iterations (default: its own)")
    p.add_argument(
        "--cli-args",
        default="",
        help="more flags for every run's command line, e.g. '--content-weight 0.5 --nnst-refresh "
        "1'; a single flag as --cli-args=--nnst-rotations (argparse reads a lone '--x' value as an "
        "option) (results are named without them: give a fresh --reuse folder)",
    )
    p.add_argument("--judge", action="store_true", help="score every result (jaxnst.bench.judge)")
    p.add_argument("--judge-samples", type=int, default=2048, help="judge's positions per image")
    p.add_argument("--judge-seed", type=int, default=0, help="judge's sampling seed")
    p.add_argument("--weights", help="the judge's VGG19 file (default: the fetched one)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    folder = Path(a.reuse)
    folder.mkdir(parents=True, exist_ok=True)
    report: dict[str, dict] = {}
    todo = {}
    for name, (content, style) in pairs(a.images).items():
        extra = tuple(shlex.split(a.cli_args))
        stems = {
            m: run(m, a.size, name, content, style, folder, a.iterations, extra) for m in a.methods
        }
        todo[name] = (content, style, stems)
        report[name] = {}
        for m, stem in stems.items():
            r = json.loads(stem.with_suffix(".json").read_text())
            report[name][m] = {k: r.get(k) for k in KEYS} | {"seconds": r.get("wall_seconds")}
    if a.judge:
        judge_all(todo, report, a)
    rows = []
    for name, (content, style, stems) in todo.items():
        # Only the bundled (credited) images themselves go into the figure; of the shared ones,
        # which are not ours to publish, only the results, with their names.
        inputs = [content, style] if name == "bundled" else []
        cells = [tile(p, a.row_height) for p in inputs]
        cells += [tile(stems[m].with_suffix(".png"), a.row_height) for m in a.methods]
        heads = ["content", "style"] if inputs else []
        pair = "" if inputs else f"{content.stem} x {style.stem}, "
        heads += [head(pair, m, report[name][m]) for m in a.methods]
        rows.append((cells, heads))
    figure(rows, a.row_height, a.out)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
    for name, rep in report.items():
        line = ", ".join(f"{m} {rep[m]['wall_seconds']:.0f} s" for m in a.methods)
        print(f"{name}: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
