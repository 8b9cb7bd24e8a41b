"""The package stays readable: no function over 80 lines, no module over 400 (issue 10).
Measured by scripts/code_shape.py (lines from the first decorator to the end of the body)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("code_shape", ROOT / "scripts" / "code_shape.py")
code_shape = importlib.util.module_from_spec(spec)
spec.loader.exec_module(code_shape)


def test_functions_and_modules_are_short():
    funcs, mods = code_shape.measure(ROOT / "jaxnst")
    assert mods and funcs
    assert [f for f in funcs if f[0] > 80] == []
    assert [m for m in mods if m[0] > 400] == []


def test_the_measure_counts_lines(tmp_path):
    pkg = tmp_path / "jaxnst"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    (pkg / "m.py").write_text(f"@staticmethod\ndef long():\n{body}\n\n\ndef short():\n    pass\n")
    funcs, mods = code_shape.measure(pkg)
    assert funcs[0] == (92, "jaxnst/m.py:long") and funcs[1] == (2, "jaxnst/m.py:short")
    assert mods == [(96, "jaxnst/m.py")]
