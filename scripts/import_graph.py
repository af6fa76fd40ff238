"""The package's import graph from ``ast`` (nothing is imported): modules, cycles, upward arrows.

    python scripts/import_graph.py                 # exit 1 when an import cycle exists
    python scripts/import_graph.py --allow-cycles  # report only

Reads every module of ``--package`` (default ``affectgpt``) and the top-level ``--scripts``
(default ``train.py infer.py demo.py``) under ``--root``. Imports inside a function are marked ``[f]``:
they run on first call, so Python tolerates them in a cycle, but a reader still has to follow
them. Prints each module's imports of the package, every cycle (strongly connected component,
with the imports that close it), the cycles between subpackages (``affectgpt.data`` <->
``affectgpt.model``: no module cycle, but the layers tangle) and every arrow from a library module
to the recipe or the apps (``--apps``). ``--strict`` fails on those two as well. Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_APPS = ("affectgpt.recipe", "affectgpt.apps", "affectgpt.export", "affectgpt.__main__")
# The layers, lowest first: a module may import its own layer and the ones before it. Modules named
# ``__main__`` and top-level modules of the package outside every layer count as apps (the top).
DEFAULT_LAYERS = ("affectgpt.core", "affectgpt.eval", "affectgpt.data", "affectgpt.model",
                  "affectgpt.runtime,affectgpt.unibench", "affectgpt.recipe", "affectgpt.apps")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    in_function: bool
    says_why: bool = False  # inside a function, with a comment on its line (why it is not at the top)

    def describe(self) -> str:
        return f"{self.source} -> {self.target}{' [f]' if self.in_function else ''} (line {self.line})"


def find_modules(root: Path, package: str, scripts: list[str]) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` under the package and each top-level script."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    for script in scripts:
        path = root / script
        if not path.is_file():
            raise SystemExit(f"error: {path}: no such script (--scripts)")
        modules[path.stem] = path
    return modules


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module named by ``from <level dots><name> import ...`` inside ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([name] if name else []))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is a module of ours."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in modules:
            return ".".join(parts[:n])
    return None


def module_edges(module: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """Every import of one of ``modules`` in ``path``, module-level or inside a function."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    lines = source.splitlines()
    is_package = path.name == "__init__.py"
    edges: list[Edge] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [_known(alias.name, modules) for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(module, is_package, child.level, child.module)
                for alias in child.names:  # "from pkg import sub" names the submodule, else the package
                    targets.append(_known(f"{base}.{alias.name}", modules) or _known(base, modules))
            for target in dict.fromkeys(targets):
                if target and target != module:
                    edges.append(Edge(module, target, child.lineno, in_function,
                                      in_function and "#" in lines[child.lineno - 1]))
            visit(child, inner)

    visit(tree, False)
    return edges


def build_graph(root: Path, package: str, scripts: list[str]) -> tuple[list[str], list[Edge]]:
    modules = find_modules(root, package, scripts)
    edges = [e for name, path in modules.items() for e in module_edges(name, path, modules)]
    return sorted(modules), edges


def strongly_connected(nodes: list[str], edges: list[Edge]) -> list[list[str]]:
    """Tarjan's algorithm; components of two or more modules (an import cycle each), sorted."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        succ[e.source].append(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                connect(w)
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

    sys.setrecursionlimit(max(1000, 4 * len(nodes)))
    for v in nodes:
        if v not in index:
            connect(v)
    return sorted(found)


def is_app(module: str, apps: tuple[str, ...], scripts: set[str]) -> bool:
    """A command: a script, a module of ``apps``, or any ``__main__`` (as :func:`layer_of` places it on top)."""
    return (module in scripts or module.split(".")[-1] == "__main__"
            or any(module == a or module.startswith(a + ".") for a in apps))


def layer_of(module: str, layers: tuple[str, ...], package: str) -> int:
    """The index of ``module``'s layer in ``layers`` (comma-separated packages per layer); the top for
    ``__main__`` modules, scripts and the package's own top-level modules."""
    if module.split(".")[-1] != "__main__":
        for i, layer in enumerate(layers):
            if any(module == p or module.startswith(p + ".") for p in layer.split(",")):
                return i
        if module == package:
            return -1  # the package's __init__: imports nothing of the layers (checked by the edges into it)
    return len(layers)


def report(root: Path, package: str, scripts: list[str], apps: tuple[str, ...],
           layers: tuple[str, ...] = ()) -> tuple[str, int, int]:
    """The printed report, the number of module cycles, and the number of subpackage cycles plus
    library -> app arrows (what ``--strict`` also fails on)."""
    nodes, edges = build_graph(root, package, scripts)
    script_names = {Path(s).stem for s in scripts}
    n_fn = sum(e.in_function for e in edges)
    n_why = sum(e.says_why for e in edges)
    lines = [f"import graph of {package} + {', '.join(scripts) or 'no scripts'}: {len(nodes)} modules, "
             f"{len(edges)} imports ({len(edges) - n_fn} module-level, {n_fn} inside functions, marked [f]; "
             f"{n_why} of those say why in a comment)", ""]
    for node in nodes:
        out = sorted({(e.target, e.in_function) for e in edges if e.source == node})
        targets = {}
        for target, in_fn in out:  # a module imported both ways counts as module-level
            targets[target] = targets.get(target, True) and in_fn
        lines.append(f"{node} -> " + ", ".join(t + (" [f]" if f else "") for t, f in targets.items())
                     if targets else node)
    cycles = strongly_connected(nodes, edges)
    lines += ["", f"cycles (strongly connected components): {len(cycles)}"]
    for i, component in enumerate(cycles, 1):
        members = set(component)
        lines.append(f"  {i}. {', '.join(component)}")
        lines += [f"       {e.describe()}" for e in edges if e.source in members and e.target in members]
    upward = [e for e in edges if not is_app(e.source, apps, script_names) and is_app(e.target, apps, script_names)]
    # Subpackages as one node each (affectgpt.data.media -> affectgpt.data); arrows into the apps are
    # left out here because they are listed below on their own.
    groups = {n: ".".join(n.split(".")[:2]) for n in nodes}
    crossing = [e for e in edges if groups[e.source] != groups[e.target] and not is_app(e.target, apps, script_names)]
    group_edges = [Edge(groups[e.source], groups[e.target], e.line, e.in_function) for e in crossing]
    group_cycles = strongly_connected(sorted(set(groups.values())), group_edges)
    lines += ["", f"cycles between subpackages and top-level library modules: {len(group_cycles)}"]
    for i, component in enumerate(group_cycles, 1):
        lines.append(f"  {i}. {', '.join(component)}")
        lines += [f"       {e.describe()}" for e in crossing
                  if groups[e.source] in component and groups[e.target] in component]
    lines += ["", f"library modules importing the recipe or the apps ({', '.join(apps + tuple(scripts))}): "
              f"{len(upward)}"]
    lines += [f"  {e.describe()}" for e in upward]
    against = []
    if layers:
        rank = {n: layer_of(n, layers, package) for n in nodes}
        against = [e for e in edges if rank[e.target] > rank[e.source] and e not in upward]
        lines += ["", f"imports against the layers ({' < '.join(layers)} < apps): {len(against)}"]
        lines += [f"  {e.describe()}" for e in against]
    return "\n".join(lines), len(cycles), len(group_cycles) + len(upward) + len(against)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="repository root")
    p.add_argument("--package", default="affectgpt")
    p.add_argument("--scripts", nargs="*", default=["train.py", "infer.py", "demo.py"], help="top-level scripts (apps)")
    p.add_argument("--apps", nargs="*", default=list(DEFAULT_APPS), help="recipe and app modules of the package")
    p.add_argument("--layers", nargs="*", default=list(DEFAULT_LAYERS),
                   help="the package's layers, lowest first (packages of one layer comma-separated); none: no check")
    p.add_argument("--allow-cycles", action="store_true", help="report cycles without failing")
    p.add_argument("--strict", action="store_true",
                   help="also fail on a cycle between subpackages, a library module importing an app, or an import "
                        "against the layers")
    args = p.parse_args(argv)
    if not (args.root / args.package).is_dir():
        p.error(f"{args.root / args.package}: no such package folder (--root/--package)")
    text, n_cycles, n_layering = report(args.root, args.package, args.scripts, tuple(args.apps), tuple(args.layers))
    print(text)
    failed = (n_cycles and not args.allow_cycles) or (n_layering and args.strict)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
