"""The core's subpackages form layers, no modules import each other in a circle, plugins use
only the public API and the command line only what ``latentgen`` exports.

Each module of ``latentgen`` may import only from its own layer or the ones below it, so no
subpackage imports one above it; within a layer no modules import each other, directly or
round a longer circle. Every import counts, also those inside functions and under
TYPE_CHECKING.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "latentgen"

#: bottom to top
LAYERS = [
    {"latentgen.errors", "latentgen.version", "latentgen._exports"},
    {"latentgen.runtime"},
    {"latentgen.data"},
    {"latentgen.model"},
    {"latentgen.plugins"},
    {"latentgen.assembly"},
    {"latentgen.measures"},
    {"latentgen.outputs"},
    {"latentgen.training"},
    {"latentgen.run"},
    {"latentgen.api", "latentgen.benchmark", "latentgen.testing", "latentgen",
     "latentgen.__main__"},
]
#: packages that export names lazily: name -> defining module (``_EXPORTS``)
EXPORTED = {pkg: importlib.import_module(pkg)._EXPORTS
            for pkg in ("latentgen", "latentgen.data", "latentgen.model", "latentgen.plugins")}
#: the stable API a modality plugin may import
PUBLIC = {"latentgen", "latentgen.data", "latentgen.model"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, resolve_exports: bool = True) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else \
        _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            if resolve_exports and module in EXPORTED:  # `from latentgen import train`
                found += [(node.lineno, EXPORTED[module][a.name]) for a in node.names
                          if a.name in EXPORTED[module]]
            # `from latentgen.data import masks` imports a module too
            found += [(node.lineno, f"{module}.{a.name}") for a in node.names
                      if (CORE.parent / (module + "." + a.name).replace(".", "/")).is_dir()
                      or (CORE.parent / ((module + "." + a.name).replace(".", "/") + ".py"))
                      .exists()]
    return found


def _layer(module: str) -> int | None:
    for level, names in enumerate(LAYERS):
        for name in names:
            if module == name or (name != "latentgen" and module.startswith(name + ".")):
                return level
    return None


def test_every_core_module_has_a_layer():
    for path in CORE.rglob("*.py"):
        assert _layer(_module_name(path)) is not None, f"{path} is in no layer"


def test_no_module_imports_a_layer_above_its_own():
    bad = []
    for path in sorted(CORE.rglob("*.py")):
        me = _module_name(path)
        mine = _layer(me)
        assert mine is not None
        for line, module in _imports(path):
            if module.startswith(("latentgen_image", "latentgen_audio", "latentgen_video")):
                bad.append(f"{me}:{line} imports the plugin {module}")
            if module.startswith("latentgen_cli") and me != "latentgen.__main__":
                bad.append(f"{me}:{line} imports the CLI ({module})")
            if not module.startswith("latentgen."):
                continue
            theirs = _layer(module)
            if theirs is not None and theirs > mine:
                bad.append(f"{me}:{line} imports {module}, a layer above")
    assert not bad, "\n".join(bad)


def test_subpackages_say_what_they_hold():
    for init in CORE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and doc.splitlines()[0].strip(), f"{init} has no one-line docstring"


@pytest.mark.parametrize("folder", [ROOT / "plugins",
                                    ROOT / "docs" / "examples" / "latentgen-example-plugin"])
def test_plugins_import_only_the_public_api(folder):
    bad = []
    for path in sorted(folder.rglob("*.py")):
        if "tests" in path.relative_to(folder).parts:
            continue  # a plugin's own tests may use latentgen.testing and the registry
        for line, module in _imports(path, resolve_exports=False):
            if (module == "latentgen" or module.startswith("latentgen.")) \
                    and module not in PUBLIC:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, "\n".join(bad)


def test_no_module_is_over_400_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in sorted(ROOT.glob("*/**/*.py"))
            if ".venv" not in p.parts and (n := len(p.read_text().splitlines())) > 400]
    assert not long, long


def _graph(roots: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``roots`` (package name -> folder) it imports."""
    modules: dict[str, Path] = {}
    for package, folder in roots.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        imports = _imports(path)
        # `from package import submodule` imports the submodule, not the package's names
        whole = {(line, m.rpartition(".")[0]) for line, m in imports if m in modules}
        for line, module in imports:
            if (line, module) in whole:
                continue
            while module and module not in modules:
                module = module.rpartition(".")[0]
            if module and module != name:
                found.add(module)
        graph[name] = found
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_modules_import_each_other_in_a_circle():
    roots = {"latentgen": CORE, "latentgen_cli": ROOT / "cli" / "latentgen_cli"}
    roots.update({p.name: p for p in (ROOT / "plugins").iterdir() if p.is_dir()})
    assert _circles(_graph(roots)) == []


def test_circles_are_found():
    # the check itself: a circle of three and a pair, beside modules that form none
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(_circles(graph)) == [["a", "b", "c"], ["d", "e"]]


def test_the_cli_imports_only_what_latentgen_exports():
    import latentgen

    bad = []
    for path in sorted((ROOT / "cli" / "latentgen_cli").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module and \
                    node.module.split(".")[0] == "latentgen":
                if node.module != "latentgen":
                    bad.append(f"{path.name}:{node.lineno} imports {node.module}")
                bad += [f"{path.name}:{node.lineno} imports {a.name}, which latentgen does "
                        "not export" for a in node.names if a.name not in latentgen.__all__]
            elif isinstance(node, ast.Import):
                bad += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                        if a.name.startswith("latentgen.")]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id == "latentgen" and node.attr not in latentgen.__all__:
                bad.append(f"{path.name}:{node.lineno} uses latentgen.{node.attr}, which it "
                           "does not export")
    assert not bad, "\n".join(bad)
