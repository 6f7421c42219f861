"""The package's layers: no module imports from a layer above its own.

Every module of src/arc_efe is parsed, imports inside functions included, and each import of
another part of the package (a subpackage or a top-level module) is checked against LAYERS.
A new import that runs back up fails here; to move a module or add a part, change the table
and say why in its comment.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "arc_efe"

# (part, the parts it may import), bottom first: a part may import itself and the parts its
# row names, which must all sit in rows above it.
LAYERS = [
    ("errors", set()),
    ("loss", set()),  # the EFE objective: torch only
    # tasks, sources (generated ones too), JSON reader, atomic files, views, tokens,
    # sequences, packing, the users' ARCDataset, submissions and their score
    ("data", {"errors"}),
    # reads run folders and task sources: diagnosis, HTML report, plots, grids, terminal display
    ("reporting", {"data", "errors"}),
    # backbone, grid positions, Policy, device, torchrun ranks, FSDP sharding, compile
    ("model", {"data", "errors"}),
    # memory bank, retrieval and success rule, recall
    ("solver2", {"model", "data", "errors"}),
    # what a run saves and loads back: config.json, checkpoints (with the memory bank), model folders
    ("saved", {"solver2", "model", "data", "loss", "errors"}),
    ("training", {"saved", "solver2", "model", "reporting", "data", "loss", "errors"}),
    ("inference", {"saved", "solver2", "model", "reporting", "data", "errors"}),
    ("cli", {"inference", "training", "saved", "solver2", "model", "reporting", "data", "loss", "errors"}),
    ("__main__", {"cli"}),
    ("__init__", {"data", "errors"}),  # `from arc_efe import ...`: the names the README shows
]
ALLOWED = dict(LAYERS)


def module_name(path: Path) -> str:
    parts = ("arc_efe",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def part(module: str) -> str:
    """The layer a module of the package belongs to: its subpackage or top-level module."""
    return module.split(".")[1] if "." in module else "__init__"


def imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module of the package, line) for every import in `path`, however deep."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "arc_efe"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            elif (node.module or "").split(".")[0] == "arc_efe":
                target = node.module
            else:
                continue
            for a in node.names:  # `from . import distributed` imports a module, not a name
                sub = f"{target}.{a.name}"
                found.append((sub if sub in MODULES else target, node.lineno))
    return found


def test_every_part_of_the_package_has_a_layer():
    parts = {part(m) for m in MODULES}
    assert parts - set(ALLOWED) == set(), "add the new part to LAYERS"
    assert set(ALLOWED) - parts == set(), "LAYERS names a part the package no longer has"


def test_each_layer_imports_only_layers_above_it_in_the_table():
    for i, (name, allowed) in enumerate(LAYERS):
        below = {n for n, _ in LAYERS[:i]}
        assert allowed <= below, f"{name} may import {sorted(allowed - below)}, which come after it"


def test_no_module_imports_from_a_layer_above():
    wrong = []
    for module, path in MODULES.items():
        for target, line in imports(module, path):
            assert target in MODULES, f"{path}:{line}: {target} is not a module of the package"
            if part(target) != part(module) and part(target) not in ALLOWED[part(module)]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line}: {part(module)} imports {target}")
    assert wrong == [], "imports that run back up a layer:\n" + "\n".join(wrong)


def test_modules_import_one_another_without_a_cycle():
    graph = {m: {t for t, _ in imports(m, p) if t != m} for m, p in MODULES.items()}
    state: dict[str, str] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for t in sorted(graph[m]):
            assert state.get(t) != "open", "import cycle: " + " -> ".join(path[path.index(t):] + [t])
            if t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
