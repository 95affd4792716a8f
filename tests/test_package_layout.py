"""The package's shape: no import cycle between its modules (imports inside functions
included), no top-level name defined in two modules."""
import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "projects" / "DFR" / "dfr"
TOOLS_PACKAGE = REPO / "tools" / "dfr_tools"


def module_files(package_dir: Path) -> Dict[str, Path]:
    """Dotted module name -> file, for every .py under `package_dir` (a package `x/__init__.py`
    is the module `x`)."""
    base = package_dir.parent
    mods = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]  # a module's relative imports start from its package
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def import_graph(package_dir: Path) -> Dict[str, Dict[str, int]]:
    """module -> {imported module of the same package: line}, from every `import` statement of
    the file wherever it is (module level, functions, methods, try blocks). `from a import b`
    points at the module a.b when there is one, else at a. A package an importer lives in is
    already being imported when the importer runs, so an edge to one of its own parent
    packages is not counted."""
    mods = module_files(package_dir)
    graph = {}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        if is_package:
            ancestors.add(name)
        edges = {}

        def add(target, line):
            # importing a.b.c runs a and a.b first
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                t = ".".join(parts[:i])
                if t in mods and t not in ancestors and t != name:
                    edges.setdefault(t, line)

        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, name, is_package)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    add(sub if sub in mods else base, node.lineno)
        graph[name] = edges
    return graph


def cycles(graph: Dict[str, Dict[str, int]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: Set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _describe(graph, comp):
    edges = [(a, b) for a in comp for b in graph[a] if b in comp]
    return "; ".join(f"{a} -> {b} (line {graph[a][b]})" for a, b in edges)


@pytest.mark.parametrize("package", [PACKAGE, TOOLS_PACKAGE], ids=lambda p: p.name)
def test_package_has_no_import_cycle(package):
    graph = import_graph(package)
    assert len(graph) > (50 if package == PACKAGE else 4)
    found = cycles(graph)
    assert not found, "import cycles: " + " | ".join(_describe(graph, c) for c in found)


def test_library_does_not_import_tool_code():
    """dfr holds what training, evaluation and the demo import; the tools' shared code
    (dfr_tools) is imported by the tools only."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(PACKAGE)}:{node.lineno}" for n in names
                      if n.split(".")[0] == "dfr_tools"]  # fmt: skip
    assert not found, f"the library imports dfr_tools at {found}"


def _write(root: Path, files: Dict[str, str]):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cycle_check_sees_function_local_and_relative_imports(tmp_path):
    """The walker itself: a cycle hidden in a function body, through a relative import, is
    found; parent-package imports and an acyclic chain are not cycles."""
    _write(tmp_path, {
        "pkg/__init__.py": "from . import sub  # noqa\n",
        "pkg/sub/__init__.py": "from .a import f\n",
        "pkg/sub/a.py": "from ..util import g\n\ndef f():\n    return g()\n",
        "pkg/sub/b.py": "def h():\n    from .a import f\n    return f\n",
        "pkg/util.py": "import os\n\ndef g():\n    from pkg.sub import b\n    return b.h\n",
    })  # fmt: skip
    graph = import_graph(tmp_path / "pkg")
    assert graph["pkg.sub.a"] == {"pkg.util": 1}
    assert graph["pkg.sub.b"] == {"pkg.sub.a": 2}  # its own package pkg.sub is not an edge
    assert set(graph["pkg.util"]) == {"pkg.sub", "pkg.sub.b"}
    found = cycles(graph)
    assert found == [["pkg.sub", "pkg.sub.a", "pkg.sub.b", "pkg.util"]]
    assert "pkg.util -> pkg.sub.b (line 4)" in _describe(graph, found[0])

    (tmp_path / "pkg/util.py").write_text("def g():\n    return 1\n")
    assert cycles(import_graph(tmp_path / "pkg")) == []


def duplicate_definitions(package_dir: Path) -> Dict[str, List[str]]:
    """Top-level function or class name -> the files defining it, where more than one does
    (module hooks such as `__getattr__` aside)."""
    where: Dict[str, List[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            defines = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if defines and not node.name.startswith("__"):
                where.setdefault(node.name, []).append(str(path.relative_to(package_dir)))
    return {k: v for k, v in where.items() if len(v) > 1}


def test_no_top_level_name_defined_in_two_modules():
    twice = duplicate_definitions(PACKAGE)
    assert not twice, f"defined in more than one module: {twice}"


def test_duplicate_check_sees_a_second_definition(tmp_path):
    hook = "def __getattr__(n):\n    pass\n"
    _write(tmp_path, {"p/a.py": "def _generate():\n    pass\n\n" + hook,
                      "p/sub/b.py": "def _generate(x):\n    def g():\n        pass\n\n" + hook
                                    + "\nclass g:\n    pass\n"})  # fmt: skip
    assert duplicate_definitions(tmp_path / "p") == {"_generate": ["a.py", "sub/b.py"]}


def test_tests_mirror_the_package():
    """tests/<part>/ for every subpackage of dfr with code (and tools/ for the scripts and
    dfr_tools); nothing else holds tests below tests/ but fixtures."""
    parts = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    folders = {p.name for p in (REPO / "tests").iterdir()
               if p.is_dir() and any(p.glob("test_*.py"))}
    assert folders == parts | {"tools"}, (sorted(folders), sorted(parts))
    assert not list((REPO / "tests" / "fixtures").rglob("test_*.py"))
