"""train.py on data laid out as the MER2025 release (data=mer2025): the readers feed training; a mixture of
sources is drawn again every epoch."""

import csv
import json
import shutil
from pathlib import Path

import pytest

from helpers import compose, data_root, run_in_process


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.mark.integration
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
    r = run_in_process(["train.py", "data=mer2025", f"data.root={mer}", f"output_dir={out}",  # in process: the
                        f"model.tiny_corpus={syn / 'train.jsonl'}", "trainer.max_steps=2",  # readers are the point
                        "trainer.batch_size=4", "eval.max_samples=2", "eval.max_new_tokens=4"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "12 rows read, 12 kept, 0 dropped" in r.stdout + r.stderr
    state = json.loads((out / "checkpoints" / "final" / "trainer_state.json").read_text())
    assert state["step"] == 2 and state["samples_seen"] == 8
    assert json.loads((out / "metrics.json").read_text())["exact"]["n"] == 2


def _two_sources(tmp_path: Path, data: Path) -> list[dict]:
    """The synthetic training clips as two JSONL sources: "big" (12 clips) and "small" (4)."""
    from affectgpt.data.manifest import read_manifest

    samples = read_manifest(data / "train.jsonl")
    specs = []
    for name, part in (("big", samples[:12]), ("small", samples[12:])):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(s.to_json()) + "\n" for s in part))
        specs.append({"format": "jsonl", "name": name, "path": str(path), "ratio": 1.0})
    return specs


@pytest.fixture(scope="module")
def mixture_recipe(tmp_path_factory):
    """A recipe over an 8-sample epoch drawn half from each source: 4 of big's 12 (subsampled),
    all 4 of small's; 2 batches of 4 per epoch, on a feature cache of its own."""
    from omegaconf import open_dict

    from affectgpt.recipe.training import TrainRecipe

    data, tmp = data_root(tmp_path_factory), tmp_path_factory.mktemp("mixture")
    cfg = compose(tmp / "run", data, f"features.cache_dir={tmp / 'features'}")
    with open_dict(cfg):
        cfg.data.kind, cfg.data.epoch_size = "sources", 8
        cfg.data.train_sources = _two_sources(tmp, data)
        cfg.data.val_sources = [{"format": "jsonl", "path": str(data / "val.jsonl")}]
    recipe = TrainRecipe(cfg)
    recipe.setup()
    return recipe


def _epoch_batches(recipe, epoch: int, start: int = 0) -> list[list[str]]:
    """The sample names of each batch that the recipe's loop yields from (epoch, start) to the epoch's end."""
    recipe.state.update(epoch=epoch, batch_in_epoch=start)
    batches = recipe._batches()
    return [next(batches)["names"] for _ in range(recipe.sampler.batches_per_epoch - start)]


def test_a_mixture_is_drawn_again_every_epoch(mixture_recipe):
    from affectgpt.data.readers import mix_epoch
    from affectgpt.data.splits import load_train

    r = mixture_recipe
    split = r.train_split
    epochs = [sorted(n for b in _epoch_batches(r, e) for n in b) for e in range(2)]
    for e, names in enumerate(epochs):
        assert names == sorted(s.name for s in mix_epoch(split.sources, e, r.cfg.data.seed, 8))
    big = [{n for n in names if n in {s.name for s in split.sources[0].samples}} for names in epochs]
    assert len(big[0]) == len(big[1]) == 4 and big[0] != big[1]  # another subset of the down-weighted source
    assert load_train(r.cfg.data).epoch(1) == split.epoch(1)  # what another rank reads before its shard
    # the feature cache holds every clip of both sources, not only the first epoch's 8
    assert len(split.pool) == 16 and not r.train_set.features.missing(split.pool)


def test_a_resumed_mixture_continues_the_epochs_draw(mixture_recipe):
    whole = _epoch_batches(mixture_recipe, 1)
    assert _epoch_batches(mixture_recipe, 1, start=1) == whole[1:]
