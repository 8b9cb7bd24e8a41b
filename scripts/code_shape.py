"""The longest functions and modules in jaxnst/ (lines, docstrings and comments included).

    python scripts/code_shape.py [--top 5]

Prints JSON; ``tests/test_code_shape.py`` holds the limits (80 lines a function, 400 a module).
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "jaxnst"


def measure(root: Path = ROOT) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(lines, "module:function") for every function and (lines, "module") for every module."""
    funcs, mods = [], []
    for p in sorted(root.rglob("*.py")):
        text = p.read_text()
        rel = str(p.relative_to(root.parent))
        mods.append((len(text.splitlines()), rel))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                funcs.append((node.end_lineno - start + 1, f"{rel}:{node.name}"))
    return sorted(funcs, reverse=True), sorted(mods, reverse=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=5)
    top = ap.parse_args().top
    funcs, mods = measure()
    print(json.dumps({"longest_functions": funcs[:top], "longest_modules": mods[:top]}, indent=1))


if __name__ == "__main__":
    main()
