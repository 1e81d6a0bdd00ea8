"""The shape of the tree, as rules a newcomer can rely on (docs/architecture.md, "Where things go"):

- every import inside `carscope` follows the data: a stage imports only the stages before it, the ground floor
  (`carscope.common`) imports no stage, and the commands (`carscope.commands`) are imported by nobody;
- no import circle between modules, counting the imports inside functions too (a lazy import is still a circle);
- no module takes a private name (`_x`) from another package;
- no file is longer than about 500 lines unless its docstring says why it is one piece.

Read from the source with `ast`, so it costs no imports and runs in a fraction of a second.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "carscope"

# who may import whom: the pipeline's order (showroom writes the dataset format offline, so it may read the
# crawler's dataset module, and nothing of it else)
ALLOWED = {
    "common": set(),
    "showroom": {"common", "crawler.dataset"},
    "crawler": {"common"},
    "train": {"common", "crawler"},
    "export": {"common", "crawler", "train"},
    "serve": {"common", "export.bundle"},
    "benchmarks": {"common", "showroom", "crawler", "train", "export", "serve"},
    "commands": {"common", "showroom", "crawler", "train", "export", "serve", "benchmarks"},
    "": {"common", "commands", "serve.api"},  # carscope/__init__.py (the API's `load`) and __main__.py
}
MAX_LINES = 500
ONE_PIECE = "One piece:"  # how a longer module's docstring starts the sentence that says why


@dataclass
class Module:
    name: str  # carscope.crawler.engine
    path: Path
    tree: ast.Module
    imports: list[tuple[str, str | None, int]] = field(default_factory=list)  # (module, name or None, line)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Lines under `if TYPE_CHECKING:`: annotations only, never run, so they make no circle."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def load_modules() -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for path in sorted(PKG.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        name = _module_name(path)
        modules[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
    for mod in modules.values():
        skip = _type_checking_lines(mod.tree)
        base = mod.name if mod.path.name == "__init__.py" else mod.name.rpartition(".")[0]
        for node in ast.walk(mod.tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args:
                # importlib.import_module("carscope.x.y") or f"carscope.showroom.layout_{name}": an import too, of
                # every module the constant prefix can name
                arg = node.args[0]
                prefix = arg.value if isinstance(arg, ast.Constant) else (
                    arg.values[0].value if isinstance(arg, ast.JoinedStr) and arg.values
                    and isinstance(arg.values[0], ast.Constant) else "")
                if isinstance(prefix, str) and prefix.startswith("carscope."):
                    exact = isinstance(arg, ast.Constant)
                    mod.imports.extend((name, None, node.lineno) for name in modules
                                       if (name == prefix if exact else name.startswith(prefix)))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("carscope"):
                        mod.imports.append((alias.name, None, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    target = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("carscope"):
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:  # `from carscope.crawler import dataset`: the module itself
                        mod.imports.append((sub, None, node.lineno))
                    else:
                        mod.imports.append((target, alias.name, node.lineno))
    return modules


def _package_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] not in ("__main__",) else ""


def _allowed(importer: str, target: str) -> bool:
    src, dst = _package_of(importer), _package_of(target)
    if src == dst or target == "carscope":  # the root holds only the version
        return True
    rest = target.split(".", 1)[1] if "." in target else ""
    return any(rest == rule or rest.startswith(rule + ".") for rule in ALLOWED.get(src, ()))


def upward_imports(modules: dict[str, Module]) -> list[str]:
    return [f"{m.path.relative_to(ROOT)}:{line} imports {target}" for m in modules.values()
            for target, _, line in m.imports if not _allowed(m.name, target)]


def private_imports(modules: dict[str, Module]) -> list[str]:
    """`from carscope.other.module import _name`, `from carscope.other import _module`, or `module._name` on a
    module of another package."""
    found = []
    for m in modules.values():
        aliases: dict[str, str] = {}  # local name -> module of another package
        for node in ast.walk(m.tree):
            if isinstance(node, ast.ImportFrom):
                for target, name, line in [i for i in m.imports if i[2] == node.lineno]:
                    if _package_of(target) == _package_of(m.name):
                        continue
                    if name and name.startswith("_") and not name.startswith("__") or any(p.startswith("_") and p != "__init__"
                                                            for p in target.split(".")[1:]):
                        found.append(f"{m.path.relative_to(ROOT)}:{line} takes {target}.{name or ''}".rstrip("."))
                for alias in node.names:
                    full = f"{node.module}.{alias.name}" if node.module else alias.name
                    if full in modules and _package_of(full) != _package_of(m.name):
                        aliases[alias.asname or alias.name] = full
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and alias.name in modules and _package_of(alias.name) != _package_of(m.name):
                        aliases[alias.asname] = alias.name
        for node in ast.walk(m.tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{m.path.relative_to(ROOT)}:{node.lineno} reads {aliases[node.value.id]}.{node.attr}")
    return found


def import_circles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a circle of imports."""
    graph = {name: sorted({t for t, _, _ in m.imports if t in modules and t != name}) for name, m in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return circles


def long_files(modules: dict[str, Module]) -> list[str]:
    found = []
    for m in modules.values():
        n = len(m.path.read_text().splitlines())
        if n > MAX_LINES and ONE_PIECE not in (ast.get_docstring(m.tree) or ""):
            found.append(f"{m.path.relative_to(ROOT)}: {n} lines")
    return found


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return load_modules()


def test_imports_follow_the_data(modules):
    assert upward_imports(modules) == []


def test_no_import_circles(modules):
    assert import_circles(modules) == []


def test_no_private_names_across_packages(modules):
    assert private_imports(modules) == []


def test_no_long_file_without_a_reason(modules):
    assert long_files(modules) == []


def test_the_rules_see_what_they_forbid(tmp_path, monkeypatch):
    """Each rule, on a small tree that breaks it: a checker that sees nothing would pass every test above."""
    fake = tmp_path / "carscope"
    files = {
        "__init__.py": "",
        "common/__init__.py": "",
        "common/util.py": "from carscope.serve import app\n",  # upward: the ground floor imports a stage
        "serve/__init__.py": "",
        "serve/app.py": "from carscope.crawler.engine import _charset\nimport carscope.serve.b\n",
        "serve/b.py": "def f():\n    from carscope.serve import app\n",  # a circle through a lazy import
        "serve/c.py": "import importlib\nimportlib.import_module(f'carscope.serve.d{1}')\n",  # and by name
        "serve/d1.py": "from carscope.serve import c\n",
        "crawler/__init__.py": "",
        "crawler/engine.py": "y = 1\n" * (MAX_LINES + 1),
        "crawler/other.py": "import carscope.serve.app as sa\nsa._hidden\n",
    }
    for rel, text in files.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(text)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PKG", fake)
    mods = load_modules()
    assert upward_imports(mods) == ["carscope/common/util.py:1 imports carscope.serve.app",
                                    "carscope/crawler/other.py:1 imports carscope.serve.app",
                                    "carscope/serve/app.py:1 imports carscope.crawler.engine"]
    assert import_circles(mods) == [["carscope.serve.app", "carscope.serve.b"], ["carscope.serve.c", "carscope.serve.d1"]]
    assert private_imports(mods) == ["carscope/crawler/other.py:2 reads carscope.serve.app._hidden",
                                     "carscope/serve/app.py:1 takes carscope.crawler.engine._charset"]
    assert long_files(mods) == [f"carscope/crawler/engine.py: {MAX_LINES + 1} lines"]
