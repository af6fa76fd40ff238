"""train.py on data laid out as the MER2025 release (data=mer2025): the readers feed training."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_train_on_a_mer2025_folder(tmp_path):
    from affectgpt.data.manifest import read_manifest
    from affectgpt.data.synthetic import generate

    syn = tmp_path / "syn"
    generate(syn, seed=5, n_train=12, n_val=4, n_test=1)
    mer = tmp_path / "MER2025"
    (mer / "video").mkdir(parents=True)
    rows = {"train": read_manifest(syn / "train.jsonl"), "val": read_manifest(syn / "val.jsonl")}
    for split, subset in (("train", "mercaptionplus"), ("val", "ovmerd")):
        for s in rows[split]:
            shutil.copy(s.video, mer / "video" / f"{s.name}.mp4")
        _write_csv(mer / f"track2_train_{subset}.csv", ["name", "openset"],
                   [[s.name, "[" + ", ".join(f"'{e}'" for e in s.emotions) + "]"] for s in rows[split]])
        _write_csv(
            mer / f"track3_train_{subset}.csv", ["name", "reason"], [[s.name, s.description] for s in rows[split]]
        )
    everyone = rows["train"] + rows["val"]
    _write_csv(
        mer / "subtitle_chieng.csv", ["name", "chinese", "english"], [[s.name, "", s.subtitle] for s in everyone]
    )

    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "train.py", "data=mer2025", f"data.root={mer}", f"output_dir={out}",
                        f"model.tiny_corpus={syn / 'train.jsonl'}", "trainer.max_steps=2", "trainer.batch_size=4",
                        "eval.max_samples=2", "eval.max_new_tokens=4"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "12 rows read, 12 kept, 0 dropped" in r.stdout + r.stderr
    state = json.loads((out / "checkpoints" / "final" / "trainer_state.json").read_text())
    assert state["step"] == 2 and state["samples_seen"] == 8
    assert json.loads((out / "metrics.json").read_text())["exact"]["n"] == 2
