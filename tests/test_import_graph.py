"""Packages import in one direction: no cycle among pyramid_jax's subpackages and top-level modules.

Every `import` of a pyramid_jax module (function-level imports included) is an edge from the importing unit (a
subpackage such as `dit`, or a top-level module such as `pipeline`) to the imported one.
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).parents[1] / "pyramid_jax"


def unit(module: str) -> str:
    """`pyramid_jax.dit.load` -> `dit`; `pyramid_jax.pipeline` -> `pipeline`; `pyramid_jax` -> `pyramid_jax`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def import_graph() -> dict[str, dict[str, str]]:
    """unit -> {imported unit: a file where the import is}."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        source = unit(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from pyramid_jax import dit` imports the subpackage; `from pyramid_jax.x import y` imports x
                targets = [f"{node.module}.{a.name}" for a in node.names] if node.module == "pyramid_jax" \
                    else [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == "pyramid_jax" and unit(target) != source:
                    graph.setdefault(source, {}).setdefault(unit(target), str(path.relative_to(PACKAGE.parent)))
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle of units, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, {}):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_finds_a_cycle():
    assert find_cycle({"a": {"b": "x"}, "b": {"c": "y"}, "c": {"a": "z"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": "x"}, "b": {"c": "y"}}) is None


def test_packages_import_in_one_direction():
    graph = import_graph()
    assert {"dit", "pipeline"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(
        f"{a} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def test_training_parts_import_only_the_core():
    """Training is symmetric: `dit_training` and `vae_training` import the shared core (`training`), the core
    imports neither, and neither imports the other."""
    graph = import_graph()
    for part in ("dit_training", "vae_training"):
        assert "training" in graph[part], f"{part} no longer imports the training core"
    for source, target in (("training", "dit_training"), ("training", "vae_training"),
                           ("dit_training", "vae_training"), ("vae_training", "dit_training")):
        assert target not in graph.get(source, {}), f"{source} imports {target} ({graph[source][target]})"
