"""Sphinx configuration of the jaxnst documentation site.

Build (from the repository root; this is what .ci/run does, warnings are errors):

    pip install -e '.[docs]'
    python -m sphinx -W --keep-going -b html docs/site build/docs

The API reference is generated from the docstrings: one page per module of the package, written
into ``docs/site/api/generated/`` at every build, so a new module appears without editing anything,
and grouped by package under each package's docstring (``api/generated/_sections.md``, which
``api/index.md`` includes; a new subpackage gets a section of its own).
A check at the end of reading fails the build (a warning, and warnings are errors) when a public
function or class of ``jaxnst`` is missing from the reference. The tutorials in ``docs/tutorials/``
are copied into the source tree and executed by myst-nb on every build (``JAXNST_DOCS_EXECUTE=off``
renders them unexecuted, for a quick look at the prose).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

project = "jaxnst"
author = "the jaxnst authors"
copyright = "the jaxnst authors, MIT licence"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
html_theme = "furo"
html_title = "jaxnst"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "api/generated/_*.md"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
    "ignore-module-all": True,  # document what a module defines, not what it re-exports
}
napoleon_use_ivar = True  # NamedTuple fields are documented by autodoc already
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Optional front-end dependencies: mocked only where that extra is not installed.
_OPTIONAL = ["starlette", "sse_starlette", "uvicorn", "multipart", "cv2", "av", "torch"]
autodoc_mock_imports = [m for m in _OPTIONAL if importlib.util.find_spec(m) is None]

nb_execution_mode = "off" if os.environ.get("JAXNST_DOCS_EXECUTE") == "off" else "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 600
nb_merge_streams = True


# --------------------------------------------------------------------------- tutorials


def _copy_tutorials() -> None:
    """docs/tutorials/*.ipynb (committed without outputs) -> docs/site/tutorials/ (git-ignored)."""
    dst = HERE / "tutorials"
    dst.mkdir(exist_ok=True)
    for nb in sorted((ROOT / "docs" / "tutorials").glob("*.ipynb")):
        shutil.copy2(nb, dst / nb.name)


# --------------------------------------------------------------------------- API reference


def public_modules() -> list[str]:
    """Every module of the package whose name has no leading underscore."""
    import jaxnst

    names = ["jaxnst"]
    for m in pkgutil.walk_packages(jaxnst.__path__, "jaxnst."):
        if not any(part.startswith("_") for part in m.name.split(".")):
            names.append(m.name)
    return sorted(names)


def public_objects(modname: str) -> list[str]:
    """Functions and classes a module defines (its ``__all__``, if it has one, else every name
    without a leading underscore), as dotted names."""
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
    out = []
    for n in names:
        obj = getattr(mod, n, None)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == modname:
            out.append(f"{modname}.{n}")
    return out


# Sections of the reference, in order: the top-level API, the layers from the bottom up, the front
# ends. A subpackage missing here still gets a section, after these.
API_SECTIONS = {
    "model": "The network and its weights",
    "loss": "The objective's terms",
    "optim": "The descent",
    "pipeline": "The pipeline's stages",
    "feedforward": "Feed-forward networks",
    "cli": "The command line",
    "video": "Video",
    "studio": "The studio",
}


def api_sections() -> list[tuple[str, list[str]]]:
    """(package, the modules in its section), in the reference's order. ``jaxnst``'s section holds
    the top-level modules; each subpackage's holds its modules at every depth."""
    groups: dict[str, list[str]] = {"jaxnst": []}
    for m in public_modules():
        parts = m.split(".")
        if len(parts) == 1:
            continue
        package = ".".join(parts[:2])
        if len(parts) == 2 and not hasattr(importlib.import_module(m), "__path__"):
            package = "jaxnst"
        groups.setdefault(package, [])
        if m != package:
            groups[package].append(m)
    known = ["jaxnst"] + [f"jaxnst.{s}" for s in API_SECTIONS]
    order = [p for p in known if p in groups] + sorted(p for p in groups if p not in known)
    return [(p, groups[p]) for p in order]


def _section(package: str, members: list[str]) -> str:
    """One section of the reference: the package's docstring as its introduction (the package is
    documented here, not on a page of its own), then its modules' pages."""
    title = "The top level" if package == "jaxnst" else API_SECTIONS.get(package[7:])
    out = [f"## {title}: `{package}`" if title else f"## `{package}`", ""]
    out += ["```{eval-rst}", f".. automodule:: {package}", "```", ""]
    if package == "jaxnst":
        out += ["`import jaxnst` gives:", "", _top_level_table()]
    out += ["```{toctree}", ":maxdepth: 1", ""]
    out += [f"generated/{m}" for m in members] + ["```", ""]
    return "\n".join(out)


def _write_api_pages() -> None:
    """One page per module in ``api/generated/``, and ``_sections.md``, which ``api/index.md``
    includes: the modules grouped by package, each group under its package's docstring."""
    out = HERE / "api" / "generated"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sections = api_sections()
    for _, members in sections:
        for m in members:
            body = f"# `{m}`\n\n```{{eval-rst}}\n.. automodule:: {m}\n```\n"
            (out / f"{m}.md").write_text(body)
    (out / "_sections.md").write_text("\n".join(_section(p, ms) for p, ms in sections))


# An rST role in a docstring, ``:func:`name``` (also ``:py:func:``, ``~`` and explicit titles).
_ROLE = re.compile(r":(?:py:)?(func|class|mod|meth|attr|data|exc|obj):`([^`]+)`")


def _lookup(dotted: str, context: str) -> object | None:
    """The object a name in a docstring of module ``context`` denotes: a name of that module, else
    a dotted ``jaxnst...`` name, read as attributes before submodules (so ``jaxnst.stylize`` is the
    function ``import jaxnst`` gives, not the module)."""
    parts = dotted.split(".")
    obj: object = importlib.import_module(context)
    if parts[0] == "jaxnst":
        obj, parts = importlib.import_module("jaxnst"), parts[1:]
    path = getattr(obj, "__name__", "")
    for name in parts:
        path = f"{path}.{name}"
        nxt = getattr(obj, name, None)
        if nxt is None and inspect.ismodule(obj):
            try:
                nxt = importlib.import_module(path)
            except ImportError:
                return None
        if nxt is None:
            return None
        obj = nxt
    return obj


def _myst_role(match: re.Match, context: str) -> str:
    """One rST role as a MyST role that resolves from any page: a name relative to the docstring's
    module (``:func:`stylize```) becomes its full dotted path. A name not found stays a literal."""
    role, text = match.groups()
    if "<" in text:
        return f"{{py:{role}}}`{text}`"
    name = text.lstrip("~.")
    shown = name.rsplit(".", 1)[-1] if text.startswith("~") else name
    for candidate in (name, f"jaxnst.{name}"):
        obj = _lookup(candidate, context)
        if inspect.ismodule(obj):
            return f"{{py:mod}}`{shown} <{obj.__name__}>`"
        if inspect.isclass(obj) or inspect.isfunction(obj):
            where = f"{obj.__module__}.{obj.__qualname__}"
            kind = "func" if "." not in obj.__qualname__ else "meth"
            kind = "class" if inspect.isclass(obj) else kind
            return f"{{py:{kind}}}`{shown} <{where}>`"
    return f"``{shown}``"


def _top_level_table() -> str:
    """The names ``import jaxnst`` gives, each linked to where it is documented, with the first
    paragraph of its docstring (its rST roles rewritten for MyST, which renders the table)."""
    import jaxnst

    rows = ["| name | what it is |", "| --- | --- |"]
    for n in jaxnst.__all__:
        obj = getattr(jaxnst, n)
        doc = (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
        doc = _ROLE.sub(lambda m, o=obj: _myst_role(m, o.__module__), doc)
        target = f"{obj.__module__}.{obj.__qualname__}"
        role = "class" if inspect.isclass(obj) else "func"
        rows.append(f"| {{py:{role}}}`jaxnst.{n} <{target}>` | {doc} |")
    return "\n".join(rows) + "\n"


def _check_reference(app, env) -> None:
    """Warn (an error under -W) for each public function or class missing from the reference."""
    from sphinx.util import logging

    documented = set(env.get_domain("py").objects)
    missing = [n for m in public_modules() for n in public_objects(m) if n not in documented]
    log = logging.getLogger("jaxnst.docs")
    for n in missing:
        log.warning(f"{n} is public but not in the API reference")


# --------------------------------------------------------------------------- docstrings


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape_bars(line: str) -> str:
    """``|x|`` is a substitution in reStructuredText; in our docstrings it is a norm."""
    parts = line.split("``")
    return "``".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def tidy_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    """Make the house's plain-text docstrings valid reStructuredText, in place.

    Our docstrings list items as ``name: text`` with indented continuation lines and no blank
    lines between them, and write norms as ``|x|``. reStructuredText wants a blank line wherever
    the indentation changes, and reads ``|x|`` as a substitution. So: a blank line is inserted
    where two consecutive lines differ in indentation (not inside ``::`` literal blocks, not
    between a directive and its options), and bars outside inline literals are escaped. Runs after
    napoleon, which has already turned Google-style sections into fields.
    """
    if len(lines) == 1 and lines[0].startswith("Alias for field number"):
        lines[:] = []  # a NamedTuple field: the class docstring describes it
        return
    out: list[str] = []
    literal = None  # indentation of the line that opened a literal block
    for line in lines:
        text, ind = line.strip(), _indent(line)
        if literal is not None:
            if text and ind <= literal:
                literal = None
            else:
                out.append(line)
                continue
        prev = out[-1] if out else ""
        directive = prev.lstrip().startswith(".. ") or prev.lstrip().startswith(":")
        if text and prev.strip() and ind != _indent(prev) and not directive:
            out.append("")
        out.append(_escape_bars(line))
        if text.endswith("::"):
            literal = ind
    lines[:] = out


def setup(app):
    _copy_tutorials()
    _write_api_pages()
    app.connect("autodoc-process-docstring", tidy_docstring)
    app.connect("env-check-consistency", _check_reference)
    return {"parallel_read_safe": False}
