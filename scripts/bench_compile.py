#!/usr/bin/env python
"""Compilation against running, cold and with a warm persistent cache, each case a fresh process.

    python scripts/bench_compile.py [--cases single256 single512 auto1024 sweep4 video4]
        [--iterations 10] [--tree DIR] [--json OUT.json]
    python scripts/bench_compile.py --done-when [--size 384] [--rounds 5] [--tree DIR]

Each case runs twice in a new process with the same new cache directory: cold (empty), then
warm. Reported per run: the process's wall seconds, the seconds inside the API call, the compile
seconds JAX reports in that call (tracing, lowering, compiling or loading from the cache) and the
cache hits. ``--tree DIR`` runs another checkout of jaxnst (e.g. ``git worktree add /tmp/old
COMMIT``) for a before/after comparison in one sitting.

``--done-when`` measures issue 20's criterion: a cold and a warm
``jaxnst CONTENT STYLE -o OUT --size 384 --iterations 3 --compile-cache DIR`` against a process
that imports jaxnst, builds ``jaxnst.objective`` at that size and compiles and runs its
``value_and_grad`` three times (jitted with the objective as an argument); prints both ratios.
Content and style are the bundled demo pair.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    case, iterations, cache = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    t_import = time.perf_counter()
    import numpy as np
    import jaxnst
    from jaxnst.cli import runtime
    from jaxnst.model import weights
    from jaxnst.cli.inputs import load_sized, sample_path
    from jaxnst.optim.compilation import compile_stats
    runtime.enable_compile_cache(Path(cache), True)
    t_import = time.perf_counter() - t_import
    variables, _ = weights.load_variables()
    size = {"single256": 256, "single512": 512, "auto1024": 1024, "sweep4": 256,
            "video4": 256}[case]
    content = load_sized(sample_path("chelsea.jpg"), size)
    style = load_sized(sample_path("swirls.png"), size)
    c0, t0 = compile_stats(), time.perf_counter()
    if case == "video4":
        from jaxnst.video import synthetic
        from jaxnst.video.api import stylize_video
        clip = synthetic.moving_object(4, (size * 3 // 4, size), speed=(0.5, 8.0),
                                       pan_speed=(0.0, 4.0))
        stylize_video(clip.frames, style, variables=variables, iterations=iterations,
                      passes=1, pass_iterations=max(1, iterations // 2))
    else:
        kw = dict(iterations=iterations, variables=variables)
        if case == "auto1024":
            kw["scales"] = "auto"
        if case == "sweep4":
            kw["style_weight"] = [1e-4, 3e-4, 1e-3, 3e-3]
        jaxnst.stylize(content, style, **kw)
    c1 = compile_stats()
    print("RESULT " + json.dumps({
        "import_seconds": t_import,
        "call_seconds": time.perf_counter() - t0,
        "compile_seconds": c1["seconds"] - c0["seconds"],
        "cache_hits": c1["cache_hits"] - c0["cache_hits"],
    }))
    """
)

BASELINE = textwrap.dedent(
    """
    import sys, time
    import jax
    import jaxnst
    from jaxnst.model import weights
    from jaxnst.cli.inputs import load_sized, sample_path
    size = int(sys.argv[1])
    content = load_sized(sample_path("chelsea.jpg"), size)
    style = load_sized(sample_path("swirls.png"), size)
    obj = jaxnst.objective(content, style, variables=weights.load_variables()[0])
    step = jax.jit(lambda vg, x: vg(x))
    x = obj.init_image
    for _ in range(3):
        (total, parts), g = step(obj.value_and_grad, x)
        x = x - 1e-3 * g
    jax.block_until_ready(x)
    """
)


def _env(tree: Path | None) -> dict:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(cmd: list[str], tree: Path | None) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(tree), cwd="/tmp")
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return wall, p.stdout


def run_case(case: str, iterations: int, tree: Path | None) -> dict:
    out: dict = {"case": case, "iterations": iterations}
    with tempfile.TemporaryDirectory() as cache:
        for when in ("cold", "warm"):
            wall, stdout = _run([sys.executable, "-c", CHILD, case, str(iterations), cache], tree)
            line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
            out[when] = {"process_seconds": wall, **json.loads(line[len("RESULT ") :])}
            r = out[when]
            print(
                f"{case:10s} {when}: process {wall:6.1f} s, call {r['call_seconds']:6.1f} s, "
                f"compile {r['compile_seconds']:6.1f} s, cache hits {r['cache_hits']}",
                flush=True,
            )
    return out


def done_when(size: int, tree: Path | None, rounds: int = 1) -> dict:
    """Issue 20's criterion (see the module docstring), ``rounds`` times interleaved (reference,
    CLI cold in a new cache, CLI warm in that cache); medians, since this machine is shared."""
    cli = [sys.executable, "-m", "jaxnst.cli"]
    pair = [str(ROOT / "jaxnst/samples/chelsea.jpg"), str(ROOT / "jaxnst/samples/swirls.png")]
    runs: dict[str, list[float]] = {"objective": [], "cold": [], "warm": []}
    for _ in range(rounds):
        runs["objective"].append(_run([sys.executable, "-c", BASELINE, str(size)], tree)[0])
        with tempfile.TemporaryDirectory() as d:
            args = pair + [
                "-o",
                f"{d}/out.png",
                "--size",
                str(size),
                "--iterations",
                "3",
                "--quiet",
            ]
            for when in ("cold", "warm"):
                runs[when].append(_run(cli + args + ["--compile-cache", f"{d}/cache"], tree)[0])
    base = statistics.median(runs["objective"])
    res: dict = {"size": size, "rounds": rounds, "seconds": runs, "objective_process_seconds": base}
    for when in ("cold", "warm"):
        res[f"cli_{when}_seconds"] = statistics.median(runs[when])
        res[f"ratio_{when}"] = res[f"cli_{when}_seconds"] / base
        pairs = [w / r for w, r in zip(runs[when], runs["objective"])]
        res[f"ratio_{when}_per_round"] = pairs
    print(
        f"objective process {base:.1f} s; CLI cold {res['cli_cold_seconds']:.1f} s "
        f"(x{res['ratio_cold']:.2f}, target <= 1.3), warm {res['cli_warm_seconds']:.1f} s "
        f"(x{res['ratio_warm']:.2f}, target <= 0.8)"
        + (f"; medians of {rounds}" if rounds > 1 else ""),
        flush=True,
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["single256", "single512", "sweep4"])
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--tree", type=Path, help="another checkout of jaxnst to measure")
    ap.add_argument("--done-when", action="store_true")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--rounds", type=int, default=1, help="--done-when: interleaved rounds")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    tree = a.tree.resolve() if a.tree else None
    if a.done_when:
        out = done_when(a.size, tree, a.rounds)
    else:
        out = {"rows": [run_case(c, a.iterations, tree) for c in a.cases]}
    out["tree"] = str(tree or ROOT)
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
