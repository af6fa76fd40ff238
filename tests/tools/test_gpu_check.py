"""benchmarks/gpu_check.py on CPU: its rows, the recipe step it times, and the whole dry run
(every row, the ZeRO-2 path, the OOM handling, the budget)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check_rows  # noqa: E402
import gpu_check_setup  # noqa: E402
import gpu_check_train  # noqa: E402


def env():
    e = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def test_gpu_rows_lead_with_the_7b_mfu_row_and_cover_the_issue():
    rows = gpu_check_rows.gpu_rows()
    first = rows[0]
    assert (first.model, first.kind, first.features, first.seq) == ("7b", "train", "cached", 1024)
    assert first.grad_ckpt is False
    kinds = {(r.model, r.kind, r.features, r.grad_ckpt) for r in rows}
    for need in [("7b", "train", "online", True), ("mid", "train", "online", False), ("mid", "train", "cached", False),
                 ("mid", "zero2", "cached", False), ("7b", "train", "cached", False), ("mid", "train", "cached", True),
                 ("7b", "train", "cached", "mlp"), ("7b-liger", "train", "cached", False)]:
        assert need in kinds, need
    by_key = {r.key: r for r in rows}
    assert len(by_key) == len(rows)
    # Issue 13: packed vs padded EMER lengths on the same samples, checkpointing none / full / selective at 8 x 1024,
    # liger vs none, fixed-shape single-clip decoding, batched manifest decoding at 1 / 8 / 32.
    packed, padded = by_key["7b-emer-packed"], by_key["7b-emer-padded"]
    assert packed.packing and not padded.packing
    assert (packed.batch, packed.seq, packed.accum) == (padded.batch, padded.seq, padded.accum)
    at_8k = {(gpu_check_rows.checkpoint_mode(r.grad_ckpt), r.ckpt_every) for r in rows
             if r.model == "7b" and r.kind == "train" and (r.batch, r.seq, r.features) == (8, 1024, "cached")}
    assert at_8k == {("none", 1), ("full", 1), ("mlp", 1), ("full", 2)}
    assert by_key["7b-liger-nockpt-b8"].kernels == "liger" and by_key["7b-cached-nockpt-b8"].kernels == "none"
    assert {r.decode for r in rows if r.kind == "decode"} == {"static", "graph", "compile"}
    assert sorted(r.batch for r in rows if r.kind == "batch-decode") == [1, 8, 32]
    assert all(r.merged for r in rows if r.kind in ("decode", "batch-decode"))
    # Merging is irreversible: no unmerged 7B row after the first merged one.
    first_merged = min(i for i, r in enumerate(rows) if r.merged)
    assert all(r.merged for r in rows[first_merged:] if r.model == "7b")


@pytest.mark.gpu_rehearsal
def test_recipe_step_is_the_training_recipes_step(tmp_path):
    """bench_recipe + recipe_step run TrainRecipe._train_step: the recipe's step counter and
    schedule advance and the trainable weights move."""
    from types import SimpleNamespace

    import torch

    args = SimpleNamespace(dry_run=True, budget_s=60, peak_tflops=None, mixed_precision="no", work=str(tmp_path),
                           audio_seconds=1.0)
    ctx = gpu_check_setup.Ctx(args, torch.device("cpu"))
    row = gpu_check_rows.Row("t", "mid", "train", "cached", False, 2, 96, accum=2)
    model, micro = gpu_check_train.training_setup(row, ctx)
    assert len(micro) == 2
    before = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    recipe = gpu_check_train.bench_recipe(model, row, ctx)
    loss = gpu_check_train.recipe_step(recipe, micro)
    assert recipe.state["step"] == 1 and recipe.scheduler.last_epoch == 1
    assert math.isfinite(loss) and 0 < loss < 20
    moved = [k for k, v in model.trainable_state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("llm.") and "lora_" in k for k in moved)
    assert any(k.startswith("video_adapter") for k in moved)
    gpu_check_train.release_recipe(recipe)
    assert "_original_forward" not in vars(model)  # Accelerate's wrapper undone for the next row


# --------------------------------------------------------------------------- the dry run
# The GPU machine has neither av nor wandb: the dry run runs with both made unimportable (as they
# are there; third-party libraries that try them optionally carry on), and records what it tried.
GPU_MACHINE_LAUNCHER = """
import runpy, sys
tried = set()
class Hide:  # every import finder, blind to av and wandb: as if they were not installed
    def __init__(self, inner):
        self.inner = inner
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("av", "wandb"):
            tried.add(name)
            return None
        return self.inner.find_spec(name, path, target)
    def __getattr__(self, attr):
        return getattr(self.inner, attr)
sys.meta_path[:] = [Hide(f) if hasattr(f, "find_spec") else f for f in sys.meta_path]
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("hidden imports tried:", sorted(tried), file=sys.stderr)
"""


def run_gpu_check(*args: str, hide_av_and_wandb: bool = False, timeout: int = 120) -> subprocess.CompletedProcess:
    """benchmarks/gpu_check.py with ``args`` in its own process (as on the GPU machine with ``hide_av_and_wandb``)."""
    python = [sys.executable, "-c", GPU_MACHINE_LAUNCHER] if hide_av_and_wandb else [sys.executable]
    return subprocess.run([*python, str(ROOT / "benchmarks" / "gpu_check.py"), *args], capture_output=True, text=True,
                          env=env(), cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check_out")
    work = tmp_path_factory.mktemp("gpu_check_work")
    proc = run_gpu_check("--dry-run", "--out", str(out), "--work", str(work), "--budget-s", "600",
                         hide_av_and_wandb=True, timeout=600)
    return proc, out


@pytest.mark.gpu_rehearsal
def test_dry_run_reports_every_row_with_sane_numbers(dry_run):
    proc, out = dry_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "gpu_check.json").read_text())
    table = (out / "gpu_check.md").read_text()
    assert proc.stdout.strip() == table.strip()
    assert doc["dry_run"] and doc["peak_tflops"] == gpu_check_setup.DRY_RUN_PEAK_TFLOPS
    assert "4·N·T" in doc["flop_formula"]
    rows = {r["key"]: r for r in doc["rows"]}
    expected = [r.key for r in gpu_check_rows.gpu_rows()] + ["oom-check", "oom-check-b1"]
    assert list(rows) == expected
    for key in expected:
        assert f"| {key} |" in table
    kind = {r.key: r.kind for r in gpu_check_rows.gpu_rows()}
    for key, r in rows.items():
        if key == "oom-check":
            continue
        if "liger" in key:  # refused on CPU with the reason, the run goes on
            assert r["status"].startswith("skipped: the model is on cpu") and "CUDA" in r["status"], r
            continue
        assert r["status"] == "ok", (key, r)
        for f in ("step_s", "samples_s", "tokens_s"):
            assert math.isfinite(r[f]) and r[f] > 0, (key, f, r[f])
        e = r["extra"]
        if kind.get(key) == "infer":
            assert e["new_tokens"] == 8 and e["prompt_tokens"] == r["seq"] > 0
            for f in ("encode_ms", "prefill_ms", "generate_s", "end_to_end_s", "decode_tokens_s"):
                assert math.isfinite(e[f]) and e[f] > 0, (f, e[f])
        elif kind.get(key) == "decode":
            assert e["identical"] is True and e["decode"] == "static" and e["decode_tokens_s"] == r["tokens_s"] > 0
        elif kind.get(key) == "batch-decode":
            assert r["tokens_s"] == pytest.approx(r["samples_s"] * e["new_tokens"], rel=1e-6) and e["clips_s"] > 0
        else:
            assert math.isfinite(r["loss"]) and 0 < r["loss"] < 20, (key, r["loss"])
            assert r["mfu"] > 0 and r["tflops"] > 0 and math.isclose(r["mfu"], r["tflops"] / doc["peak_tflops"])
            if "-emer-" not in key:
                assert r["tokens_s"] == pytest.approx(r["samples_s"] * r["seq"], rel=1e-6)
            if kind.get(key, "train") == "train":
                assert e["recipe_steps"] == doc["warmup"] + doc["steps"], (key, e)
    assert rows["mid-zero2"]["extra"]["zero_stage"] == 2
    # Online rows count the encoders' forward on top of the same LLM work.
    assert rows["mid-online"]["extra"]["model_tflop_per_step"] > rows["mid-cached"]["extra"]["model_tflop_per_step"]
    # Packed and padded EMER rows train the same samples (same real tokens and model FLOPs) in fewer, fuller rows.
    packed, padded = rows["7b-emer-packed"]["extra"], rows["7b-emer-padded"]["extra"]
    for f in ("samples_per_step", "tokens_per_step", "model_tflop_per_step"):
        assert packed[f] == padded[f], f
    assert packed["rows_per_step"] < padded["rows_per_step"] == padded["samples_per_step"]
    assert rows["7b-emer-packed-flex"]["extra"]["attn_implementation"] == "eager"
    assert rows["7b-emer-packed"]["extra"]["attn_implementation"] == "sdpa"


@pytest.mark.gpu_rehearsal
def test_dry_run_reports_oom_and_retries_at_half_batch(dry_run):
    _, out = dry_run
    rows = {r["key"]: r for r in json.loads((out / "gpu_check.json").read_text())["rows"]}
    oom, retry = rows["oom-check"], rows["oom-check-b1"]
    assert oom["status"] == "OOM" and "fake out-of-memory" in oom["extra"]["error"]
    assert oom["step_s"] is None and oom["mfu"] is None
    assert retry["status"] == "ok" and retry["batch"] == oom["batch"] // 2


@pytest.mark.gpu_rehearsal
def test_dry_run_needs_neither_av_nor_wandb(dry_run):
    """It passed above with both unimportable: something in the run reached for them, was refused, and it carried on."""
    import ast

    proc, _ = dry_run
    assert proc.returncode == 0
    reports = [ln for ln in proc.stderr.splitlines() if ln.startswith("hidden imports tried: ")]
    assert len(reports) == 1, proc.stderr[-2000:]
    tried = ast.literal_eval(reports[0].removeprefix("hidden imports tried: "))
    assert tried and all(name.split(".")[0] in ("av", "wandb") for name in tried), tried  # the hiding was exercised
    assert not any(line.startswith("Traceback") for line in proc.stderr.splitlines())


@pytest.mark.gpu_rehearsal
def test_budget_spent_skips_rows_and_still_writes_the_table(tmp_path):
    proc = run_gpu_check("--dry-run", "--out", str(tmp_path), "--work", str(tmp_path / "w"), "--budget-s", "0",
                         "--only", "7b-cached-ckpt,mid-zero2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())["rows"]
    assert [(r["key"], r["status"]) for r in rows] == [
        ("7b-cached-ckpt", "skipped: budget"),
        ("mid-zero2", "skipped: budget"),
    ]
    assert "skipped: budget" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.gpu_rehearsal
def test_unknown_row_key_is_a_clear_error(tmp_path):
    proc = run_gpu_check("--dry-run", "--out", str(tmp_path), "--only", "7b-nonsense")
    assert proc.returncode == 2 and "unknown row keys ['7b-nonsense']" in proc.stderr


@pytest.mark.gpu_rehearsal
def test_launcher_really_hides_av_and_wandb(tmp_path):
    script = tmp_path / "uses_av.py"
    script.write_text("import importlib.util\nassert importlib.util.find_spec('wandb') is None\nimport av\n")
    proc = subprocess.run([sys.executable, "-c", GPU_MACHINE_LAUNCHER, str(script)], capture_output=True, text=True,
                          env=env(), timeout=60)
    assert proc.returncode != 0 and "No module named 'av'" in proc.stderr
