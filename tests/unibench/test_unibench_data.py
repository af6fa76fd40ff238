"""MER-UniBench readers: the nine ``*-process`` layouts, the restricted unpickler, split sizes, face crops."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from unibench_fixtures import GOLD, NAMES, build_process_root, write_label_npz

from affectgpt.unibench.data import (
    LAYOUTS,
    UnsafePickleError,
    find_sets,
    load_label_npz,
    read_jsonl_set,
    read_process_set,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return build_process_root(tmp_path_factory.mktemp("unibench"), faces_missing=("test_dia0_utt1",))


def test_every_layout_reads_its_test_split(root):
    sets = find_sets(root, check_sizes=False)
    assert list(sets) == list(NAMES)  # benchmark order
    for name, test in sets.items():
        assert list(test.gold) == NAMES[name], name  # train names and IEMOCAP sessions 1-4 are cut
        got = list(test.gold.values())
        assert got == pytest.approx(GOLD[name]) if LAYOUTS[name].gold == "valence" else got == GOLD[name], name
        for s in test.samples:
            assert s.video.is_file() and s.video.parent.name == LAYOUTS[name].video_dir
            assert s.subtitle.startswith("I said") or name == "mer2024"
        assert (test.samples[0].audio is not None) == (name in ("mer2024", "ovmerdplus"))
    assert sets["mer2024"].samples[0].subtitle == "中文"  # the only set fed the Chinese subtitle
    # faces: flat openface_face/NAME.npy, nested NAME/NAME.npy for OV-MERD+
    assert sets["mer2023"].samples[0].extra["faces"].endswith("openface_face/sample_00001998.npy")
    assert sets["ovmerdplus"].samples[1].extra["faces"].endswith("samplenew3_00000001/samplenew3_00000001.npy")


def test_split_sizes_are_asserted(root):
    with pytest.raises(ValueError, match=r"mer2023 test split has 2 samples, expected 411"):
        read_process_set(root, "mer2023")
    with pytest.raises(ValueError, match=r"iemocapfour test split has 2 samples, expected 1241"):
        find_sets(root, sets=["iemocapfour"])
    with pytest.raises(FileNotFoundError, match="neither simsv2_test.jsonl nor simsv2-process"):
        find_sets(root / "mer2023-dataset-process", sets=["simsv2"])


class Evil:
    """Unpickling this would run a command."""

    def __reduce__(self):
        return (os.system, ("touch pwned-by-label-file",))


def test_label_npz_with_a_forbidden_class_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "label.npz"
    write_label_npz(bad, test_corpus={"a": {"emo": Evil(), "val": 0.0}})
    with pytest.raises(UnsafePickleError, match=r"label\.npz\[test_corpus\]: refusing to unpickle (posix|os)\.system"):
        load_label_npz(bad)
    assert not (tmp_path / "pwned-by-label-file").exists()
    from collections import OrderedDict

    write_label_npz(bad, test_corpus=OrderedDict(a={"emo": "happy"}))
    with pytest.raises(UnsafePickleError, match=r"collections\.OrderedDict"):
        load_label_npz(bad)
    # the guard is what refuses: numpy's own loader with allow_pickle=True runs the payload
    write_label_npz(bad, test_corpus={"a": {"emo": Evil(), "val": 0.0}})
    np.load(bad, allow_pickle=True)["test_corpus"]
    assert (tmp_path / "pwned-by-label-file").exists()


def test_label_npz_reads_numpy_scalars_protocol_2_and_plain_arrays(tmp_path):
    path = tmp_path / "label.npz"
    arr = np.empty((), dtype=object)
    arr[()] = {"x": {"emo": "sad", "val": np.float64(-1.5)}, "y": {"emo": 2, "val": np.int64(3)}}
    with open(tmp_path / "p2.npy", "wb") as f:  # an old-style pickle (protocol 2, _codecs.encode for bytes)
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(arr, f, protocol=2)
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        z.write(tmp_path / "p2.npy", "test_corpus.npy")
        buf = tmp_path / "n.npy"
        np.save(buf, np.arange(3))
        z.write(buf, "names.npy")
    got = load_label_npz(path)
    assert got["test_corpus"]["x"]["val"] == -1.5 and got["test_corpus"]["y"]["emo"] == 2
    assert got["names"].tolist() == [0, 1, 2]


def test_plain_jsonl_forms(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    (tmp_path / "meld_test.jsonl").write_text('{"name": "a", "label": "Joy", "video": "clip.mp4"}\n')
    (tmp_path / "sims_test.jsonl").write_text('{"name": "b", "valence": -0.4}\n')
    (tmp_path / "ovmerdplus_test.jsonl").write_text('{"name": "c", "openset": "[happy, \'calm\']"}\n')
    sets = find_sets(tmp_path)
    assert sets["meld"].gold == {"a": "joy"} and sets["meld"].samples[0].video == tmp_path / "clip.mp4"
    assert sets["sims"].gold == {"b": -0.4} and sets["sims"].samples == []
    assert sets["ovmerdplus"].gold == {"c": ["happy", "calm"]}
    (tmp_path / "bad.jsonl").write_text('{"name": "a"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: expected an object with 'name' and 'label'"):
        read_jsonl_set(tmp_path / "bad.jsonl", "mer2023")


def test_face_crops_are_taken_uniformly_and_a_missing_face_fails_the_sample(root):
    import torch

    from affectgpt.data.collate import ClipDataset, TokenPlan
    from affectgpt.data.media import MediaError, load_faces

    faces = np.arange(10)[:, None, None, None] * np.ones((10, 4, 4, 3), np.uint8)
    assert load_faces_of(faces, 8, load_faces) == [0, 1, 2, 3, 5, 6, 7, 8]  # arange(0, 10, 1.25)
    assert load_faces_of(faces[:3], 8, load_faces) == [0, 0, 0, 1, 1, 1, 2, 2]
    with pytest.raises(MediaError, match=r"expected face crops \[T>0,H,W,3\]"):
        load_faces_of(np.zeros((3, 4, 4), np.uint8), 8, load_faces)
    plan = TokenPlan(video_tokens=4, fusion_tokens=0, image_size=(16, 16), interpolation="bicubic",
                     resize_mode="shortest", frames=8, audio_kind="mean", audio_window=10, audio_stride=10,
                     audio_queries_per_window=1, audio_fixed_tokens=2, audio_max_samples=32000)
    meld = find_sets(root, sets=["meld"], check_sizes=False)["meld"].samples
    items = [ClipDataset(meld, plan, task="labels", visual="faces")[i] for i in range(2)]
    assert items[0]["error"] is None and tuple(items[0]["frames"].shape) == (8, 3, 16, 16)
    assert items[0]["audio"] is not None  # from the video's own track
    assert "test_dia0_utt1.npy: file not found" in items[1]["error"]  # counted as a bad sample, never swapped
    frames_item = ClipDataset(meld, plan, task="labels", visual="frames")[1]
    assert frames_item["error"] is None and not torch.equal(frames_item["frames"], items[0]["frames"])


def load_faces_of(array, n, load_faces):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.npy"
        np.save(path, array)
        return [int(x) for x in load_faces(path, n)[:, 0, 0, 0]]


def test_scorer_reads_process_folders_as_gold(root, tmp_path, capsys):
    import json

    from affectgpt.apps.unibench_score import main

    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "meld.jsonl").write_text("".join(json.dumps({"name": n, "openset": f"[{lab}]"}) + "\n"
                                             for n, lab in zip(NAMES["meld"], ["surprised", "sad"], strict=False)))
    assert main(["--gold", str(root), "--pred", str(pred)]) == 2  # the full split size is asserted
    assert "mer2023 test split has 2 samples, expected 411" in capsys.readouterr().err
    out = tmp_path / "m.json"
    assert main(["--gold", str(root), "--pred", str(pred), "--no-check-sizes", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert list(res["datasets"]) == ["meld"] and res["missing_predictions"] == [n for n in NAMES if n != "meld"]
    # gold surprise / anger; predicted surprised (same groups as surprise) and sad (a miss at level 1)
    assert 0 < res["datasets"]["meld"]["per_checkpoint"]["pred"]["score"] < 1
