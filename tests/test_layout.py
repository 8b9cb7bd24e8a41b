"""The house stays readable (issue 23): the folders show the layers, imports point down, no cycles,
short modules, a short README and a grouped --help.

Imports are read from the source (every ``import``, at module level or inside a function, type-only
ones included, and every string that names a jaxnst module: ``importlib.import_module`` loads the
``jaxnst`` command's subcommands by name), so a test fails as soon as a new edge breaks a rule,
whether or not it runs."""

import argparse
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "jaxnst"

# Each part of the package and the parts it may import (besides itself and jaxnst's base modules,
# ``_atomic``, ``_interrupt`` and ``image_io``). Lower layers first; nothing may import a layer
# above its own, and the table itself has no cycle (no two parts may import each other).
LAYERS = {
    "base": set(),  # jaxnst/_atomic.py, jaxnst/image_io.py
    "model": set(),
    "loss": {"model"},
    "optim": {"loss", "model"},
    "pipeline": {"optim", "loss", "model"},
    # Feed-forward networks: beside the pipeline, reusing its options and targets.
    "feedforward": {"pipeline", "optim", "loss", "model"},
    "api": {"pipeline", "optim", "loss", "model"},  # stylize, objective, weights
    "cli": {"api", "feedforward", "pipeline", "optim", "loss", "model"},
    "video": {"api", "feedforward", "pipeline", "optim", "loss", "model", "cli"},
    "studio": {"api", "feedforward", "pipeline", "optim", "loss", "model", "cli"},
    "bench": {"api", "feedforward", "pipeline", "optim", "loss", "model", "cli", "video"},
    # The package's face (jaxnst/__init__.py re-exports the API, stylize_video, feed-forward) and
    # the jaxnst command (its entry points, the still-image run, the subcommands it loads by name).
    "face": {"api", "feedforward", "video", "pipeline", "optim", "loss", "model"},
    "entry": {"api", "feedforward", "pipeline", "optim", "loss", "model", "cli", "video", "studio"},
}
PART = {
    "_atomic": "base",
    "_interrupt": "base",  # Ctrl-C's flag, read inside compiled programs of every layer
    "image_io": "base",
    "stylize": "api",
    "objective": "api",
}
MODULES = {  # modules whose part is not their folder's
    "jaxnst": "face",
    "jaxnst.cli": "entry",
    "jaxnst.cli.__main__": "entry",
    "jaxnst.cli.command": "entry",
}


def modules(root: Path = PKG) -> dict[str, Path]:
    return {
        ".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in root.rglob("*.py")
    }


def part(module: str) -> str:
    """The layer a module belongs to: its subpackage, or for a top-level module the table above
    (the ``python -m jaxnst.weights`` entry point is the API's), or :data:`MODULES`."""
    if module in MODULES:
        return MODULES[module]
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (PKG / parts[1]).is_dir()):
        return parts[1]
    return PART.get(parts[-1], "api")


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the jaxnst modules it imports (a package's ``__init__`` counts as the package),
    by statement or by name (a string constant that is a module's dotted name, ``jaxnst.x``)."""
    out: dict[str, set[str]] = {}
    for m, p in mods.items():
        edges = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and str(node.value).startswith("jaxnst."):
                edges.add(node.value)  # (not "jaxnst" alone: a folder's or a program's name)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    edges.add(full if full in mods else node.module)
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
        out[m] = {e for e in edges if e in mods and e != m}
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan). A module importing from
    its own package's ``__init__`` (the package's face, which re-exports it) is not an edge back."""
    g = {m: {w for w in ws if not m.startswith(w + ".")} for m, ws in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def upward(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, targets in sorted(graph.items()):
        a = part(m)
        for t in sorted(targets):
            b = part(t)
            if b != a and b != "base" and b not in LAYERS[a]:
                bad.append(f"{m} ({a}) imports {t} ({b})")
    return bad


def test_no_import_cycles_and_no_import_upwards():
    mods = modules()
    assert {part(m) for m in mods} <= set(LAYERS), {m: part(m) for m in mods}
    assert cycles(LAYERS) == []  # the parts are in one order
    graph = imports(mods)
    assert cycles(graph) == []
    assert upward(graph) == []


def test_the_checks_can_fail(tmp_path):
    pkg = tmp_path / "jaxnst"
    (pkg / "model").mkdir(parents=True)
    (pkg / "loss").mkdir()
    for d in (pkg, pkg / "model", pkg / "loss"):
        (d / "__init__.py").write_text("")
    (pkg / "model" / "a.py").write_text("def f():\n    from jaxnst.loss import b\n")
    (pkg / "loss" / "b.py").write_text("from jaxnst.model import a\n")
    (pkg / "model" / "c.py").write_text(
        '"""jaxnst.loss.b by name."""\nimport importlib\nNAMES = {"b": "jaxnst.loss.b"}\n'
    )
    mods = modules(pkg)
    graph = imports(mods)
    assert graph["jaxnst.model.a"] == {"jaxnst.loss.b"}
    assert graph["jaxnst.model.c"] == {"jaxnst.loss.b"}  # (not from its docstring)
    assert cycles(graph) == [["jaxnst.loss.b", "jaxnst.model.a"]]
    assert upward(graph) == [
        "jaxnst.model.a (model) imports jaxnst.loss.b (loss)",
        "jaxnst.model.c (model) imports jaxnst.loss.b (loss)",
    ]
    assert cycles({"api": {"video"}, "video": {"cli"}, "cli": {"api"}}) == [["api", "cli", "video"]]


def test_a_short_top_level_and_short_modules():
    top = [p.name for p in PKG.glob("*.py")]
    assert len(top) <= 12, top
    long = []
    for folder in (PKG, ROOT / "scripts"):
        for p in folder.rglob("*.py"):
            n = len(p.read_text().splitlines())
            if n > 400:
                long.append((n, str(p.relative_to(ROOT))))
    assert long == []
    for p in PKG.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(p.read_text()))
        assert doc and len(doc) > 40, f"{p.relative_to(ROOT)}: say what the package is for"


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, len(lines)


@pytest.mark.parametrize(
    "build, least",
    [("jaxnst.cli.command", 6), ("jaxnst.video.cli", 3), ("jaxnst.studio.cli", 2)],
)
def test_help_is_grouped(build, least):
    """``jaxnst --help`` (and video's, serve's) in named argument groups, with examples."""
    import importlib

    parser = importlib.import_module(build).build_parser()
    groups = [
        g
        for g in parser._action_groups
        if g.title not in ("positional arguments", "options")
        and any(not isinstance(a, argparse._HelpAction) for a in g._group_actions)
    ]
    assert len(groups) >= least, [g.title for g in parser._action_groups]
    assert "example" in (parser.epilog or "").lower()
