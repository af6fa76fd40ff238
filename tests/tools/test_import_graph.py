"""scripts/import_graph.py on tiny packages written here (with and without a cycle) and on this repository."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "import_graph.py"


def graph(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root), *args], capture_output=True, text=True,
                          timeout=60)


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


LAYERED = {
    "pkg/__init__.py": "",
    "pkg/core.py": "import json\n",
    "pkg/lib/__init__.py": "from .util import helper\n",
    "pkg/lib/util.py": "from ..core import json\n\ndef helper():\n    from pkg import core\n",
    "pkg/app.py": "from pkg.lib import util\n",
    "run.py": "def main():\n    import pkg.app\n",
}


def test_a_layered_package_has_no_cycle_and_exits_0(tmp_path):
    root = write_package(tmp_path, LAYERED)
    r = graph(root, "--package", "pkg", "--scripts", "run.py", "--apps", "pkg.app", "--strict")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "6 modules" in lines[0] and "5 imports (3 module-level, 2 inside functions" in lines[0], lines[0]
    assert "pkg.lib.util -> pkg.core" in lines  # absolute and relative import of one module: module-level wins
    assert "pkg.lib -> pkg.lib.util" in lines and "pkg.app -> pkg.lib.util" in lines and "run -> pkg.app [f]" in lines
    assert "cycles (strongly connected components): 0" in lines
    assert "cycles between subpackages and top-level library modules: 0" in lines
    assert any(ln.startswith("library modules importing the recipe or the apps") and ln.endswith(": 0") for ln in lines)


def test_a_cycle_through_a_function_level_import_exits_1(tmp_path):
    files = dict(LAYERED)
    files["pkg/core.py"] = "import json\n\ndef late():\n    from .lib.util import helper\n"  # core <-> lib.util
    files["pkg/lib/report.py"] = "def show():\n    from .. import app\n"  # library -> app
    root = write_package(tmp_path, files)
    r = graph(root, "--package", "pkg", "--scripts", "run.py", "--apps", "pkg.app")
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "cycles (strongly connected components): 1\n  1. pkg.core, pkg.lib.util\n" in out, out
    assert "       pkg.core -> pkg.lib.util [f] (line 4)" in out and "       pkg.lib.util -> pkg.core (line 1)" in out
    assert "): 1\n  pkg.lib.report -> pkg.app [f] (line 2)" in out, out
    assert graph(root, "--package", "pkg", "--scripts", "run.py", "--apps", "pkg.app", "--allow-cycles").returncode == 0
    # a library -> app arrow alone fails only under --strict
    files["pkg/core.py"] = "import json\n"
    root = write_package(tmp_path, files)
    assert graph(root, "--package", "pkg", "--scripts", "run.py", "--apps", "pkg.app").returncode == 0
    assert graph(root, "--package", "pkg", "--scripts", "run.py", "--apps", "pkg.app", "--strict").returncode == 1


def test_a_cycle_between_subpackages_is_reported(tmp_path):
    root = write_package(tmp_path, {"pkg/__init__.py": "", "pkg/a/__init__.py": "", "pkg/a/x.py": "from ..b import y\n",
                                    "pkg/b/__init__.py": "", "pkg/b/y.py": "", "pkg/b/z.py": "from ..a import x\n"})
    r = graph(root, "--package", "pkg", "--scripts", "--apps")
    assert r.returncode == 0 and "cycles (strongly connected components): 0" in r.stdout
    assert "cycles between subpackages and top-level library modules: 1\n  1. pkg.a, pkg.b\n" in r.stdout, r.stdout
    assert graph(root, "--package", "pkg", "--scripts", "--apps", "--strict").returncode == 1


def test_this_repository_keeps_its_layers_and_the_scorer_imports_nothing_else_of_the_package():
    r = graph(ROOT, "--strict", "--scripts", "train.py", "infer.py", "demo.py")  # exit 1 on a cycle or an upward arrow
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    lines = r.stdout.splitlines()
    for summary in ("cycles (strongly connected components)", "cycles between subpackages", "library modules importing",
                    "imports against the layers"):
        assert any(ln.startswith(summary) and ln.endswith(": 0") for ln in lines), summary
    # affectgpt.core.fileio (atomic writes, JSONL lines) is a leaf: standard library only, so everyone may use it
    assert "affectgpt.core.fileio" in lines and not any(ln.startswith("affectgpt.core.fileio ->") for ln in lines)
    # affectgpt.core.errors (error classes, the exit-code mapping) is a leaf too: every command ends through it
    assert "affectgpt.core.errors" in lines and not any(ln.startswith("affectgpt.core.errors ->") for ln in lines)
    edges = [ln for ln in lines if ln.startswith("affectgpt.eval") and " -> " in ln]
    assert edges, r.stdout
    for line in edges:  # the scorer is a library of its own: it loads without torch or the model code
        # One exception, function-level: the UniBench scorer's command line reads the authors' gold folders
        # through the torch-free readers of affectgpt.unibench.data (its torch-freeness: test_unibench_scorer.py).
        # The schema (affectgpt.core.config, standard library only) holds the scorer's choices; python -m
        # affectgpt.eval is the scorer app's shim (its key=value line composes without torch: test_eval_rules.py).
        allowed = {"affectgpt.core.fileio", "affectgpt.core.errors", "affectgpt.core.config", "affectgpt.apps.score"}
        if line.startswith("affectgpt.unibench.score ->"):
            allowed.add("affectgpt.unibench.data [f]")
        assert all(t.startswith("affectgpt.eval") or t in allowed for t in line.split(" -> ")[1].split(", ")), line
