"""The import contract (docs/architecture.md): no import cycle anywhere in the package, and no
module imports one of a higher layer. Read from the source (every import, at the top of a
module or inside a function), not from what happens to be imported at run time."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import rdlens

ROOT = Path(rdlens.__file__).parent
CORE = {"rdlens.core", "rdlens.core.*", "rdlens.paper"}
"""the shared core: errors, progress, run folders, the study lifecycle, settings, threads, the balance itself,
the paper's values"""


LAYERS = (
    ("core", CORE | {"rdlens"}),
    ("models", None),  # every module not named in another layer: each system's room, measures, training, plotting
    ("systems", {"rdlens.systems", "rdlens.systems.base", "rdlens.systems.*.system", "rdlens.systems.run"}),
    ("report", {"rdlens.report", "rdlens.report.*"}),
    ("studies", {"rdlens.studies", "rdlens.studies.*"}),
    ("commands", {"rdlens.cli", "rdlens.__main__"}),
)
"""lowest first; a module may import its own layer and those below it (the package root only
holds the version and finds modules by their short names on demand)"""


def _matches(module: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(module, pattern) and (module.count(".") == pattern.count(".") or pattern.endswith(".*"))


def layer_of(module: str) -> int:
    for level, (_, members) in enumerate(LAYERS):
        if members is not None and any(_matches(module, m) for m in members):
            return level
    return 1


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the rdlens modules it imports (``from rdlens.x import y`` counts as rdlens.x.y
    when that is a module, else rdlens.x)."""
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names}
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_and_nothing_else():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_imports_itself_through_others():
    assert cycles(import_graph()) == []


def test_the_core_imports_nothing_above_it():
    graph = import_graph()
    core = {m for m in graph if layer_of(m) == 0}
    assert {"rdlens.core.balance", "rdlens.core.study", "rdlens.paper"} <= core
    upward = {m: sorted(graph[m] - core) for m in core if graph[m] - core}
    assert upward == {}


def test_no_module_imports_one_of_a_higher_layer():
    graph = import_graph()
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
              for m in sorted(graph) for d in sorted(graph[m]) if layer_of(d) > layer_of(m)]
    assert upward == []


def test_the_layer_check_sees_an_upward_import():
    assert layer_of("rdlens.systems.ddpm.system") == 2 and layer_of("rdlens.systems.grayscott.model") == 1
    assert layer_of("rdlens.systems.ddpm.controls") == 1 and layer_of("rdlens.core.balance") == 0
    assert layer_of("rdlens.report.table") > layer_of("rdlens.systems.grayscott.system") > layer_of("rdlens.plot")
    assert layer_of("rdlens.cli") > layer_of("rdlens.studies.reproduce") > layer_of("rdlens.report")


def room_of(module: str) -> str | None:
    """The system room a module lives in (``rdlens.systems.ddpm.unet`` -> ``ddpm``), if any."""
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "systems" else None


def test_a_system_room_imports_no_other_room_but_the_gray_scott_model():
    graph = import_graph()
    rooms = {room_of(m) for m in graph} - {None}
    assert rooms == {"grayscott", "lstm", "ddpm", "convlstm"}
    crossing = [f"{m} imports {d}" for m in sorted(graph) for d in sorted(graph[m])
                if room_of(m) and room_of(d) and room_of(d) != room_of(m) and d != "rdlens.systems.grayscott.model"]
    assert crossing == []


def test_the_room_check_sees_a_crossing():
    assert room_of("rdlens.systems.ddpm.unet") == "ddpm" and room_of("rdlens.systems.base") is None
    assert room_of("rdlens.systems.lstm") is None  # a room's package docstring is no module of it
