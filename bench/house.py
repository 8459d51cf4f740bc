"""How the house is built, read from a tree's syntax (this checkout, or another given by --tree,
e.g. an earlier commit's worktree): files and lines of common/, the longest import chain, imports
running back up (a module importing a package that imports it), and the places that decide the
run's device or spell a precision. No timing: this measures structure only."""
from __future__ import annotations

import argparse
import ast
from functools import lru_cache
from pathlib import Path

from common.builds.metrics import spread
from common.host.paths import ROOT

PRECISIONS = {"fp32", "bf16", "fp16", "int8"}
# calls that ask whether a GPU (or ONNX Runtime's CUDA) is usable: where the device is decided
DEVICE_QUESTIONS = {"resolve_device", "cuda_problem", "get_available_providers"}


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tree", type=Path, default=ROOT, help="the checkout to read (default: this)")


def _name(tree: Path, path: Path) -> str:
    parts = path.relative_to(tree).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: Path, path: Path, modules: set) -> set:
    """The modules of common/ that `path` imports, anywhere in it."""
    here = _name(tree, path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.update(n for n in [target] + [f"{target}.{a.name}" for a in node.names]
                         if n in modules)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
    return found - {here}


def _sites(path: Path) -> tuple[int, int]:
    """(device questions asked, precision names compared to or spelled in a label) in a file."""
    device = precision = 0
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            device += (func.attr if isinstance(func, ast.Attribute)
                       else getattr(func, "id", "")) in DEVICE_QUESTIONS
        elif isinstance(node, ast.Compare):
            precision += any(isinstance(side, ast.Constant) and side.value in PRECISIONS
                             for side in [node.left, *node.comparators])
        elif isinstance(node, ast.JoinedStr):
            precision += any(isinstance(v, ast.Constant) and "int8+" in str(v.value)
                             for v in node.values)
    return device, precision


def run(args: argparse.Namespace) -> dict:
    tree = args.tree.resolve()
    paths = sorted((tree / "common").rglob("*.py"))
    modules = {_name(tree, p) for p in paths}
    graph = {_name(tree, p): _imports(tree, p, modules) for p in paths}

    @lru_cache(maxsize=None)
    def depth(module: str) -> int:  # the import graph has no circle (tests/test_structure.py)
        return 1 + max((depth(m) for m in graph[module]), default=0)

    def package(module: str) -> str:
        return module if (tree / Path(*module.split(".")) / "__init__.py").exists() \
            else module.rpartition(".")[0]

    back_up = sorted({f"{m} <-> {package(t)}" for m, targets in graph.items() for t in targets
                      if package(t) != package(m) and not package(m).startswith(package(t))
                      and any(m in graph[o] for o in graph if package(o) == package(t))})
    sites = {_name(tree, p): _sites(p) for p in paths}
    lines = [len(p.read_text().splitlines()) for p in paths if p.name != "__init__.py"]
    figures = {"tree": str(args.tree), "modules": len(lines),
               "folders": sorted({str(p.parent.relative_to(tree)) for p in paths}),
               "lines_median": spread(lines)["median"], "lines_max": max(lines),
               "import_depth": max(depth(m) for m in graph), "imports_back_up": back_up,
               "device_questions": {m: s[0] for m, s in sites.items() if s[0]},
               "precision_spelled": {m: s[1] for m, s in sites.items() if s[1]}}
    for key, value in figures.items():
        print(f"{key}: {value}")
    return figures
