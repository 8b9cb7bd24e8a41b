"""The benchmark scripts still run (tiny sizes; their numbers are not checked here)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_loop_runs(tmp_path):
    out = tmp_path / "b.json"
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_loop.py"), "--size", "32",
                        "--steps", "2", "--repeats", "1", "--random-weights", "--json", str(out)],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(out.read_text())
    assert set(r["seconds_per_eval"]) == {"compiled", "python_loop", "compiled_autodiff"}
    assert all(v > 0 for v in r["seconds_per_eval"].values())
