"""The import rules of docs/ARCHITECTURE.md, read from the source alone (nothing is imported,
nothing outside the repository is needed):
- the floors: core < launcher < blender | dataset < operators < ui; `blender/` and
  `dataset/` share a floor and import neither each other; nothing imports the package root;
- Blender's modules (bpy, mathutils, ...) only in blender/, operators/, ui.py and the root's
  register();
- no two files import each other, directly or around a longer circle, also lazily inside a
  function.
Each rule is also shown to fail on a planted violation in a copy of the package.
"""

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "addon" / "scenegen_addon"

# floor -> the floors it may import from (its own included)
MAY_IMPORT = {
    "core": {"core"},
    "launcher": {"core", "launcher"},
    "blender": {"core", "launcher", "blender"},
    "dataset": {"core", "launcher", "dataset"},
    "operators": {"core", "launcher", "blender", "dataset", "operators"},
    "ui": {"core", "launcher", "blender", "dataset", "operators", "ui"},
    "root": {"core", "launcher", "blender", "dataset", "operators", "ui", "scripts"},
    "scripts": set(),  # scripts/run.py finds its programs by name, at run time
}
BLENDER_MODULES = {"bpy", "mathutils", "bmesh", "addon_utils", "bpy_extras", "_bpy"}
MAY_USE_BLENDER = {"blender", "operators", "ui", "root"}


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, the package's own name first ('scenegen_addon.core.plan')."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def floor(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1:
        return "root"
    return parts[1].removesuffix(".py")


def imported(name: str, path: Path) -> set[str]:
    """Every module name an import statement of this file names, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module
            names.add(origin)
            names.update(f"{origin}.{alias.name}" for alias in node.names)
    return names


def edges(package: Path) -> dict[str, set[str]]:
    """Module -> the package's own modules it imports (submodules or packages)."""
    own = modules(package)
    return {name: {t for t in imported(name, path) if t in own and t != name}
            for name, path in own.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that reach each other (strongly connected, more than one), leaving out
    a package that only imports its own submodules while they import it."""
    order, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        order[v] = low[v] = len(order)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in order:
            visit(v)
    return [g for g in found
            if len(g) > 2 or not all(m.startswith(g[0] + ".") for m in g[1:])]


def violations(package: Path) -> list[str]:
    own = modules(package)
    graph = edges(package)
    problems = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            if target.count(".") == 0 and floor(name) != "root":
                problems.append(f"{name} imports the package root {target}")
            elif floor(target) not in MAY_IMPORT[floor(name)]:
                problems.append(f"{name} ({floor(name)}) imports {target} ({floor(target)})")
        blender = {t.split(".")[0] for t in imported(name, own[name])} & BLENDER_MODULES
        if blender and floor(name) not in MAY_USE_BLENDER:
            problems.append(f"{name} ({floor(name)}) imports {', '.join(sorted(blender))}")
    problems += [f"circle: {' <-> '.join(group)}" for group in circles(graph)]
    return problems


def test_the_package_keeps_the_import_rules():
    assert len(modules(PACKAGE)) > 50
    problems = violations(PACKAGE)
    assert not problems, "\n".join(problems)


def planted(tmp_path: Path, files: dict[str, str]) -> list[str]:
    """The violations a copy of the package has beyond the package's own, with extra source
    appended to (or creating) some of its files."""
    copy = tmp_path / PACKAGE.name
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for relative, text in files.items():
        path = copy / relative
        path.write_text((path.read_text(encoding="utf-8") if path.exists() else "") + text,
                        encoding="utf-8")
    before = violations(PACKAGE)
    return [problem for problem in violations(copy) if problem not in before]


def test_a_lazy_circle_between_two_files_is_found(tmp_path):
    found = planted(tmp_path, {"launcher/lock.py": "\ndef f():\n    from . import progress\n",
                               "launcher/progress.py": "\nfrom . import lock\n"})
    assert found == [
        "circle: scenegen_addon.launcher.lock <-> scenegen_addon.launcher.progress"]


def test_a_longer_circle_is_found(tmp_path):
    found = planted(tmp_path, {"core/p1.py": "from . import p2\n",
                               "core/p2.py": "from . import p3\n",
                               "core/p3.py": "from .p1 import x\n"})
    assert found == [
        "circle: scenegen_addon.core.p1 <-> scenegen_addon.core.p2 <-> scenegen_addon.core.p3"]


def test_upward_and_sideways_imports_are_found(tmp_path):
    found = planted(tmp_path, {
        "core/rng.py": "\nfrom ..launcher import progress\n",
        "dataset/font.py": "\ndef f():\n    from ..blender import compat\n",
        "launcher/lock.py": "\nfrom .. import register\n",
    })
    assert found == [
        "scenegen_addon.core.rng (core) imports scenegen_addon.launcher (launcher)",
        "scenegen_addon.core.rng (core) imports scenegen_addon.launcher.progress (launcher)",
        "scenegen_addon.dataset.font (dataset) imports scenegen_addon.blender (blender)",
        "scenegen_addon.dataset.font (dataset) imports scenegen_addon.blender.compat (blender)",
        "scenegen_addon.launcher.lock imports the package root scenegen_addon",
    ]


def test_blender_modules_below_the_blender_floor_are_found(tmp_path):
    found = planted(tmp_path, {"dataset/font.py": "\ndef f():\n    import bpy\n",
                               "core/rng.py": "\nfrom mathutils import Vector\n"})
    assert found == ["scenegen_addon.core.rng (core) imports mathutils",
                     "scenegen_addon.dataset.font (dataset) imports bpy"]
