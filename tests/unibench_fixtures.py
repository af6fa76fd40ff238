"""Tiny copies of the nine MER-UniBench ``*-process`` layouts (imported by tests/unibench/test_unibench_*.py).

Clips come from the synthetic generator, label files are written with numpy (pickled dicts in
``.npz``, as the authors ship them), faces are OpenFace-style ``.npy`` crops. Two clips per set, plus
the other splits the label files carry (train names, IEMOCAP sessions 1-4) that the readers must cut.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from affectgpt.unibench.data import LAYOUTS

NAMES = {
    "mer2023": ["sample_00001998", "sample_00003564"],
    "mer2024": ["sample_00000366", "sample_00000820"],
    "meld": ["test_dia0_utt0", "test_dia0_utt1"],
    "iemocapfour": ["Ses05F_impro01_F000", "Ses05M_script02_M003"],
    "cmumosi": ["k5Y_838nuGo_1", "c7UH_rxdZv4_10"],
    "cmumosei": ["uogwnZGb-iE_2", "uogwnZGb-iE_3"],
    "sims": ["video_0003_0006", "video_0010_0038"],
    "simsv2": ["video_0023_0007", "video_0021_0005"],
    "ovmerdplus": ["sample_00000000", "samplenew3_00000001"],
}
GOLD = {  # what the readers must return for NAMES[set]
    "mer2023": ["worried", "happy"], "mer2024": ["surprise", "angry"], "meld": ["surprise", "anger"],
    "iemocapfour": ["sad", "anger"], "cmumosi": [-1.4, 2.2], "cmumosei": [0.0, 1.0], "sims": [-1.0, -0.8],
    "simsv2": [1.0, -0.2], "ovmerdplus": [["unease", "anxiety"], []],
}


def _label_record(set_name: str, gold):
    layout = LAYOUTS[set_name]
    if layout.gold == "valence":
        return {"emo": 0, "val": np.float64(gold)}
    if layout.gold == "label_index":
        return {"emo": layout.classes.index(gold), "val": -10}
    return {"emo": gold, "val": np.float64(0.5)}


def write_label_npz(path: Path, **splits: dict) -> None:
    """``np.savez`` of 0-d object arrays holding dicts: pickles, as in the authors' files."""
    arrays = {}
    for key, value in splits.items():
        a = np.empty((), dtype=object)
        a[()] = value
        arrays[key] = a
    np.savez(path, **arrays)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _clip(path: Path, seed: int, with_audio: bool = True):
    from affectgpt.data.synthetic import render_face, render_voice, write_clip

    rng = np.random.default_rng(seed)
    frames = render_face(("happy", "sad", "angry", None)[seed % 4], 6, 32, rng)
    wave = render_voice(("calm", "excited", "anxious")[seed % 3], 12000, 16000, rng)
    write_clip(path, frames, wave if with_audio else None, fps=6, sample_rate=16000)
    return frames


def build_process_root(root: Path, faces_missing: tuple[str, ...] = ()) -> Path:
    """All nine ``*-process`` folders under ``root`` (MER2024 and OV-MERD+ with separate wav files,
    OV-MERD+ faces in the MER2025 nested layout); ``faces_missing`` names get no face file."""
    from affectgpt.data.synthetic import render_voice, write_clip

    seed = 0
    for set_name, names in NAMES.items():
        layout = LAYOUTS[set_name]
        folder = root / layout.folder
        (folder / layout.video_dir).mkdir(parents=True, exist_ok=True)
        for name in names:
            seed += 1
            separate_audio = set_name in ("mer2024", "ovmerdplus")
            frames = _clip(folder / layout.video_dir / f"{name}.mp4", seed, with_audio=not separate_audio)
            if separate_audio:
                (folder / layout.audio_dir).mkdir(parents=True, exist_ok=True)
                wave = render_voice("calm", 16000, 16000, np.random.default_rng(seed))
                write_clip(folder / layout.audio_dir / f"{name}.wav", None, wave, fps=1, sample_rate=16000,
                           audio_codec="pcm_s16le")
            if name not in faces_missing:
                face = folder / "openface_face" / (f"{name}/{name}.npy" if set_name == "ovmerdplus" else f"{name}.npy")
                face.parent.mkdir(parents=True, exist_ok=True)
                np.save(face, frames[:, 4:28, 4:28])  # a crop, [T,H,W,3] uint8
        subs = [[n, "中文", f"I said something number {i}."] for i, n in enumerate(names)]
        if set_name == "ovmerdplus":
            _write_csv(
                folder / "subtitle_eng.csv", ["name", "sentence"], [[n, s[2]] for n, s in zip(names, subs, strict=True)]
            )
            _write_csv(folder / "ovlabel.csv", ["name", "openset"],
                       [[n, "[" + ", ".join(g) + "]"] for n, g in zip(names, GOLD[set_name], strict=False)])
            continue
        _write_csv(folder / layout.subtitle_file, ["name", "chinese", "english"], subs)
        test = {n: _label_record(set_name, g) for n, g in zip(names, GOLD[set_name], strict=False)}
        if set_name == "iemocapfour":  # one corpus: Session 5 is the test split
            test["Ses01F_impro01_F000"] = _label_record(set_name, "happy")
            write_label_npz(folder / layout.label_file, whole_corpus=test)
        else:
            write_label_npz(folder / layout.label_file, **{layout.label_key: test},
                            train_corpus={"train_0001": _label_record(set_name, GOLD[set_name][0])})
    return root
