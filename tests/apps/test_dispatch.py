"""``python -m affectgpt COMMAND``: one front door to every command of affectgpt/apps."""

import subprocess
import sys
from pathlib import Path

import pytest

from affectgpt.__main__ import commands, main

ROOT = Path(__file__).resolve().parents[2]


def test_every_app_module_is_a_command_with_a_summary():
    listed = commands()
    modules = {p.stem for p in (ROOT / "affectgpt" / "apps").glob("*.py")} - {"__init__", "cli"}
    assert set(listed) == modules
    assert all(line and "``" not in line.split()[0] for line in listed.values()), listed


def test_the_list_and_an_unknown_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m affectgpt COMMAND") and "\n  bench " in out and "\n  train " in out
    assert main(["nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown command 'nope'; commands: ablation, ") and "unibench_score" in err


@pytest.mark.parametrize("name", ["synthetic", "infer"])
def test_a_command_by_name_is_the_command(name, capsys):
    assert main([name, "--help"]) == 0
    assert "usage: python" in capsys.readouterr().out


@pytest.mark.integration
def test_bad_input_through_the_front_door_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "affectgpt", "infer", f"checkpoint={tmp_path}",
                        f"video={tmp_path / 'missing clip.mp4'}"], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing clip.mp4'}: file not found"], r.stderr


@pytest.mark.parametrize("module", ["affectgpt.data.faces", "affectgpt.data.synthetic", "affectgpt.data.synthetic_long",
                                    "affectgpt.model.summary", "affectgpt.model.gguf", "affectgpt.eval.plots"])
def test_a_moved_command_says_where_it_went_instead_of_exiting_0(module, capsys):
    import runpy
    import warnings

    with warnings.catch_warnings(), pytest.raises(SystemExit) as exit_:
        warnings.simplefilter("ignore", RuntimeWarning)  # "found in sys.modules": this process imported it already
        runpy.run_module(module, run_name="__main__")
    name = module.rsplit(".", 1)[1]
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"error: python -m {module} is now python -m affectgpt.apps.{name} " \
                                      f"(or python -m affectgpt {name})\n"
