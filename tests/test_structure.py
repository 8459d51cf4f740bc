"""The house stays readable: no function in common/, bench/ or the scripts longer than 60 lines, and
no import circle anywhere in the tree, bench/ included, not even through an import inside a
function."""
import ast
from pathlib import Path

from conftest import ROOT

SOURCES = (sorted((ROOT / "common").rglob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
           + sorted(ROOT.glob("bert_*.py")))
LONGEST = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > LONGEST:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert not long, long


def imports(path: Path) -> set[str]:
    """The project modules `path` imports anywhere in it, resolved to module names."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names] + [target]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in ("common", "bench"))
    return found


def test_no_import_circle():
    modules = {module_name(path): path for path in SOURCES}
    graph = {name: {m for m in imports(path) if m in modules and m != name}
             for name, path in modules.items()}

    def circle_from(start, node, seen):
        for nxt in graph[node]:
            if nxt == start:
                return seen + [nxt]
            if nxt not in seen:
                found = circle_from(start, nxt, seen + [nxt])
                if found:
                    return found
        return None

    circles = [c for name in graph if (c := circle_from(name, name, [name]))]
    assert not circles, circles[0]


def test_the_import_graph_sees_bench_and_finds_the_circle_it_once_had():
    """The check reads bench/ too: report -> charts (inside a function) and charts -> report was
    the circle, and charts now reads what both need from bench/result_files.py."""
    assert "bench.charts" in imports(ROOT / "bench" / "report.py")
    assert "bench.result_files" in imports(ROOT / "bench" / "charts.py")
    assert "bench.report" not in imports(ROOT / "bench" / "charts.py")


def calls(name: str, paths=None) -> set[str]:
    """The modules (relative paths) of common/ and bench/ that call `name` (a function or a
    method of that name), read from their syntax trees."""
    found = set()
    for path in paths or SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    found.add(path.relative_to(ROOT).as_posix())
    return found


def test_each_computation_has_one_home():
    """Written once, called from everywhere, bench/ included: an ONNX Runtime session is opened
    in ort_session, a key is hashed by cache_key from build_key (the export and every backend)
    and the trial's decision only, a median/min/max is metrics.spread, two models' answers are
    compared by metrics.agreeing_rows (the argmax of logits compared nowhere else), NNCF is set up
    in ov_quantize.nncf_int8."""
    assert calls("InferenceSession") == {"common/backends/ort_session.py"}
    assert calls("cache_key") == {"common/backends/base.py", "common/run/trial.py"}
    assert calls("median") == {"common/builds/metrics.py"}
    assert calls("AdvancedQuantizationParameters") == {"common/backends/ov_quantize.py"}
    argmax_compared = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                    isinstance(side, ast.Call) and getattr(side.func, "attr", "") == "argmax"
                    for side in [node.left, *node.comparators]):
                argmax_compared.add(path.relative_to(ROOT).as_posix())
    assert argmax_compared == {"common/builds/metrics.py"}


def test_every_backend_defines_the_whole_contract():
    """No optional member read with a default: each backend module defines every name of
    base.Backend (common/backends/README.md), found in its syntax tree (GroqFlow's package need
    not be installed)."""
    from common.backends import BACKENDS
    from common.backends.base import Backend

    wanted = {name for name in vars(Backend) if not name.startswith("_")} | \
        set(Backend.__annotations__)
    for name in BACKENDS:
        tree = ast.parse((ROOT / "common" / "backends" / f"{name}.py").read_text())
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)} | \
            {target.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
             for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
             if isinstance(target, ast.Name)}
        assert wanted <= defined, (name, sorted(wanted - defined))
    assert not calls("getattr", [ROOT / "common" / "run" / "offers.py",
                                 ROOT / "common" / "backends" / "__init__.py"])


# common/'s rooms, lowest first: a module imports from its own room and the rooms below it only
ROOMS = ("host", "inputs", "builds", "backends", "run")


def upward_imports() -> list[str]:
    """Every import in common/ into a room above the importing module's (anywhere in the
    module, an import inside a function too)."""
    found = []
    for path in sorted((ROOT / "common").rglob("*.py")):
        parts = path.relative_to(ROOT / "common").parts
        if len(parts) == 1:  # common/__init__.py
            continue
        rank = ROOMS.index(parts[0])
        for target in imports(path):
            room = target.split(".")[1] if target.count(".") >= 1 else None
            if room in ROOMS and ROOMS.index(room) > rank:
                found.append(f"{path.relative_to(ROOT)} -> {target}")
    return found


def test_common_is_rooms_and_no_import_runs_back_up():
    """common/ holds rooms only (common/README.md's 'where things are'), and no module imports
    from a room above its own."""
    assert sorted(p.name for p in (ROOT / "common").iterdir()
                  if p.is_dir() and p.name != "__pycache__") == sorted(ROOMS)
    assert [p.name for p in (ROOT / "common").glob("*.py")] == ["__init__.py"]
    assert upward_imports() == []


def test_the_room_check_finds_an_import_running_up():
    """The check reads imports inside functions too: one from host/ into run/ is found."""
    module = ROOT / "common" / "host" / "zz_upward_probe.py"
    module.write_text("def f():\n    from ..run import trial\n")
    try:
        assert sorted(upward_imports()) == ["common/host/zz_upward_probe.py -> common.run",
                                            "common/host/zz_upward_probe.py -> common.run.trial"]
    finally:
        module.unlink()
