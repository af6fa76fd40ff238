"""affectgpt/recipe/telemetry.py: wandb mode choice, curves.png, label metrics."""

from __future__ import annotations

import pytest

from affectgpt.recipe import telemetry


@pytest.mark.parametrize("configured, env, key, expected", [
    ("disabled", "online", "k", "disabled"),   # the config wins
    (None, "disabled", None, "disabled"),       # then WANDB_MODE (tests set it)
    (None, None, "k", "online"),
    (None, None, None, "offline"),              # no key: never fails, logs into the output dir
])
def test_wandb_mode(monkeypatch, configured, env, key, expected):
    for name, value in (("WANDB_MODE", env), ("WANDB_API_KEY", key)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert telemetry.wandb_mode(configured) == expected


def test_curves_png(tmp_path):
    history = [{"step": s, "loss": 3.0 / s, "lr": 1e-3} for s in range(1, 21)] + [{"step": 10, "val_f1": 0.5},
                                                                                  {"step": 20, "val_f1": 0.9}]
    telemetry.plot_curves(history, tmp_path / "curves.png")
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_label_prf_by_hand():
    m = telemetry.label_prf([["Happy", "calm"], []], [["happy", "anxious"], ["sad"]])
    # sample 1: P 1/2, R 1/2; sample 2: P 0 (nothing predicted), R 0 -> P = R = 0.25
    assert m == {"precision": 0.25, "recall": 0.25, "f1": 0.25, "n": 2}


def test_curves_draw_every_validation_metric():
    metrics = {"exact": {"precision": 0.4, "recall": 0.6, "f1": 0.48, "n": 2},
               "scorer": {"label": {"m_avg_f1": 0.55, "wheel_l1_f1": 0.7}, "clue": {"f1": None}}}
    row = telemetry.validation_record(20, metrics)
    assert row == {"step": 20, "val_f1": 0.48, "val_precision": 0.4, "val_recall": 0.6, "val_m_avg_f1": 0.55,
                   "val_wheel_l1_f1": 0.7}
    assert telemetry.validation_record(5, {"exact": None, "skipped": "ZeRO-3"}) == {"step": 5, "val_f1": None}
    history = [{"step": s, "loss": 1.0 / s, "lr": 1e-3} for s in range(1, 21)] + [
        telemetry.validation_record(10, {"exact": {"f1": 0.2, "precision": 0.1, "recall": 0.3}}), row]
    ax = telemetry.curves_figure(history).axes[2]
    drawn = {ln.get_label(): list(ln.get_ydata()) for ln in ax.lines}
    assert drawn == {"label F1 (exact)": [0.2, 0.48], "label P": [0.1, 0.4], "label R": [0.3, 0.6],
                     "scorer M-avg F1": [0.55], "scorer wheel L1 F1": [0.7]}
