"""The layers hold: Ray/Optuna only in medflip/sweep/, pandas/seaborn only in analysis/ and
medflip/results/table.py, no import cycle among medflip's and analysis' modules nor among
their packages, config at the bottom (it loads only the registry), and every CLI's --help
starts without torch.

Read from the source with `ast` (every import, also the ones inside functions), so the
test is fast and a lazy import cannot slip a layer either. Imports under
`if __name__ == "__main__":` (a script's entry point) and `if TYPE_CHECKING:` (annotations
only) are not dependencies at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("medflip", "analysis")

# top-level module -> where it may be imported (path prefixes relative to the checkout)
ALLOWED = {
    "ray": ("medflip/sweep/",),
    "medflip.sweep": ("medflip/sweep/",),  # Ray's layer: the library below never reaches up
    "optuna": ("medflip/sweep/",),
    "pandas": ("analysis/", "medflip/results/table.py"),
    "seaborn": ("analysis/",),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_skipped_block(node: ast.AST) -> bool:
    """`if __name__ == "__main__":` (a script's entry) or `if TYPE_CHECKING:` (annotations)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    if isinstance(test, ast.Name | ast.Attribute):
        return getattr(test, "id", getattr(test, "attr", "")) == "TYPE_CHECKING"
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    )


def _imports(path: Path, module: str, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for each import in `path`, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    skip = {id(n) for node in ast.walk(tree) if _is_skipped_block(node) for n in ast.walk(node)}
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_pkg]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # `from pkg import module` imports the module
                full = f"{base}.{alias.name}"
                out.append((full if full in known else base, node.lineno))
    return out


def _graph() -> tuple[dict[str, Path], dict[str, list[tuple[str, int]]]]:
    sources = _sources()
    known = set(sources)
    return sources, {m: _imports(p, m, known) for m, p in sources.items()}


def test_heavy_libraries_stay_in_their_layers():
    sources, graph = _graph()
    bad = []
    for module, imports in graph.items():
        rel = sources[module].relative_to(ROOT).as_posix()
        for name, line in imports:
            layer = next((k for k in ALLOWED if name == k or name.startswith(k + ".")), None)
            allowed = ALLOWED.get(layer)
            if allowed is not None and not rel.startswith(allowed):
                bad.append(f"{rel}:{line} imports {name} (allowed only in {', '.join(allowed)})")
    assert not bad, "\n".join(bad)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    sources, graph = _graph()
    edges = {
        m: {name for name, _ in imps if name in sources and name != m} for m, imps in graph.items()
    }
    cycles = _cycles(edges)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def _package(module: str) -> str:
    """The unit of the package graph: a subpackage (medflip.data), or a top-level module
    on its own (medflip.config), since `medflip/` itself holds the bottom and the top."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else module


def test_no_package_cycle():
    """medflip.config <-> medflip.data was a loop at this level while no module loop existed."""
    sources, graph = _graph()
    edges: dict[str, set[str]] = {}
    for module, imports in graph.items():
        for name, _ in imports:
            if name in sources and _package(name) != _package(module):
                edges.setdefault(_package(module), set()).add(_package(name))
    cycles = _cycles(edges)
    assert not cycles, "package cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


# Run in a fresh interpreter: the modules loaded, as `sys.modules` sees them at exit.
PROBE = """
import atexit, json, runpy, sys
args = sys.argv[1:]
def report():
    med = sorted(m for m in sys.modules if m == "medflip" or m.startswith("medflip."))
    sys.stderr.write("PROBE " + json.dumps({"torch": "torch" in sys.modules, "medflip": med}))
atexit.register(report)
if args[0] == "-c":
    exec(args[1])
elif args[0] == "-m":
    sys.argv = args[1:]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
else:
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
"""


def _probe(*args: str) -> list[tuple[tuple[str, ...], dict]]:
    """Each command line in `args` (split on spaces; `-c CODE` is one), run at once: what
    each loaded."""
    import json
    import subprocess
    import sys

    commands = [tuple(a.split(" ", 1) if a.startswith("-c ") else a.split(" ")) for a in args]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROBE, *c],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in commands
    ]
    out = []
    for command, proc in zip(commands, procs, strict=True):
        err = proc.communicate(timeout=120)[1]
        assert "PROBE " in err, f"{' '.join(command)}: {err[-2000:]}"
        out.append((command, json.loads(err.rsplit("PROBE ", 1)[1])))
    return out


def test_config_loads_no_torch_and_no_medflip_module_but_the_registry():
    [(_, loaded)] = _probe("-c import medflip.config")
    assert not loaded["torch"]
    assert loaded["medflip"] == ["medflip", "medflip.config", "medflip.registry"]


def test_every_cli_help_starts_without_torch():
    sweeps = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "sweeps").glob("*.py"))
    assert len(sweeps) >= 7
    clis = ["analysis/frontier.py", "analysis/ablation.py", "analysis/report.py"]
    clis += ["-m medflip.train", "-m medflip.config", *sweeps]
    loaded = _probe(*(f"{c} --help" for c in clis))
    assert [" ".join(c) for c, got in loaded if got["torch"]] == []


def test_the_probe_sees_torch():
    """The probe itself: a command that does load torch is reported as loading it."""
    [(_, loaded)] = _probe("-c import medflip.losses.contrastive")
    assert loaded["torch"] and "medflip.losses.contrastive" in loaded["medflip"]


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The cycle finder and the import reader themselves, on made-up modules."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    path = tmp_path / "mod.py"
    path.write_text(
        "import ray.tune\nfrom . import sibling\n"
        "def f():\n    import pandas as pd\n"
        "if __name__ == '__main__':\n    import optuna\n"
        "if TYPE_CHECKING:\n    import seaborn\n"
    )
    got = _imports(path, "medflip.sweep.mod", {"medflip.sweep.sibling"})
    assert got == [("ray.tune", 1), ("medflip.sweep.sibling", 2), ("pandas", 4)]


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_without_path_edits(package):
    """analysis/ is an installed package like medflip/ (pyproject), not a sys.path trick."""
    import importlib
    import subprocess
    import sys

    spec = importlib.util.find_spec(package)
    assert spec is not None and Path(spec.origin).parent == ROOT / package
    # From another directory, with nothing added to sys.path.
    code = f"import {package}, sys; print({package}.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(ROOT / package / "__init__.py")
