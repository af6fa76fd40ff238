"""Evaluation plots: every bar drawn has the value of the metric it names (scorer results on the
OV-MERD reference predictions, a multi-checkpoint benchmark, a modality ablation), and the
scorer's ``--plot`` writes an image."""

from pathlib import Path

import pytest

REF = Path(__file__).resolve().parents[3] / "shared" / "reference" / "ovmer"
MODELS = ("Chat-UniVi", "Qwen-Audio")


def heights(ax) -> list[float]:
    return [round(p.get_height(), 9) for p in ax.patches]


@pytest.fixture(scope="module")
def reference_results():
    if not (REF / "predictions").is_dir():
        pytest.skip(f"reference data not found: {REF}")
    from affectgpt.eval import read_records, score

    gold = read_records(str(REF / "gt" / "mer2024_check-openset.jsonl"))
    return {m: score(read_records(str(REF / "predictions" / f"{m}__nosubtitle-addsub.jsonl")), gold,
                     wheels=REF / "converted_emotion_wheel") for m in MODELS}


def test_scorer_bars_are_the_metrics(reference_results, tmp_path):
    from affectgpt.eval.plots import SUMMARY, save, scores_figure

    fig = scores_figure(reference_results)
    summary, wheels, ranking = fig.axes[0], fig.axes[1], fig.axes[2]
    label = {m: r["label"] for m, r in reference_results.items()}
    assert heights(summary) == [round(label[m][k]["f1"] if isinstance(label[m][k], dict) else label[m][k], 9)
                                for m in MODELS for k, _ in SUMMARY]
    n_wheels = sum(k.endswith("-L1") for k in label[MODELS[0]])
    assert n_wheels == 5
    assert heights(wheels) == [round(label[m][f"M3-W{w}-{lv}"]["f1"], 9) for m in MODELS
                               for w in range(1, 6) for lv in ("L1", "L2")]
    widths = [p.get_width() for p in ranking.patches]  # sorted, best last
    assert widths == sorted(label[m]["m_avg_f1"] for m in MODELS) and widths[0] < widths[1]
    assert [t.get_text() for t in ranking.get_yticklabels()] == ["Qwen-Audio", "Chat-UniVi"]
    assert save(fig, tmp_path / "s.svg").read_text().startswith("<?xml")


def test_cli_plot_writes_a_png_beside_the_json(tmp_path):
    from affectgpt.apps.score import main

    pred, gold = tmp_path / "pred.jsonl", tmp_path / "gold.jsonl"
    pred.write_text('{"name": "a", "emotions": ["happy"], "description": "She smiles. Therefore she is happy."}\n'
                    '{"name": "b", "emotions": ["sad"]}\n')
    gold.write_text('{"name": "a", "emotions": ["happy", "excited"], "description": "She smiles widely."}\n'
                    '{"name": "b", "emotions": ["angry"]}\n')
    assert main(["--pred", str(pred), "--gold", str(gold), "--out", str(tmp_path / "m.json"), "--plot"]) == 0
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["--pred", str(pred), "--gold", str(gold), "--plot"]) == 2  # bare --plot needs --out


def test_benchmark_bars_per_set_and_mean_per_checkpoint():
    from affectgpt.eval.plots import benchmark_figure

    scores = {"MER2023": {"step-100": 0.5, "step-200": 0.7}, "MELD": {"step-100": 0.3, "step-200": 0.2},
              "OV-MERD+": {"step-100": 0.4, "step-200": 0.6}}
    result = {"datasets": {s: {"metric": "hit_rate", "per_checkpoint": {c: {"score": v} for c, v in per.items()}}
                           for s, per in scores.items()}, "mean_best": 0.5}
    fig = benchmark_figure(result)
    assert heights(fig.axes[0]) == [0.5, 0.3, 0.4, 0.7, 0.2, 0.6]
    assert [round(y, 9) for y in fig.axes[1].lines[0].get_ydata()] == [0.4, 0.5]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["step-100", "step-200"]


def test_ablation_cue_bars_against_chance(tmp_path):
    from affectgpt.eval.plots import ablation_figure, plot

    def cond(f1, vis, voc):
        return {"label": {"f1": f1}, "cues": {"visual": {"balanced_accuracy": vis, "chance": 0.25},
                                              "vocal": {"balanced_accuracy": voc, "chance": 1 / 3}}}

    report = {"conditions": {"full": cond(0.9, 0.95, 0.9), "no_video": cond(0.5, 0.27, 0.88)}}
    fig = ablation_figure(report)
    assert heights(fig.axes[0]) == [0.9, 0.5]
    assert heights(fig.axes[1]) == [0.95, 0.9, 0.27, 0.88]
    chance = [seg[0][1] for c in fig.axes[1].collections for seg in c.get_segments()]
    assert [round(c, 9) for c in chance] == [0.25, round(1 / 3, 9)]
    assert plot(report, tmp_path / "a.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="cannot plot"):
        plot({"something": 1}, tmp_path / "x.png")


def test_plots_command_line_old_and_new_spellings(tmp_path, capsys):
    import json

    from affectgpt.apps.plots import main

    report = {"conditions": {"full": {"label": {"f1": 0.9}}, "no_video": {"label": {"f1": 0.5}}}}
    (tmp_path / "a.json").write_text(json.dumps(report))
    a = str(tmp_path / "a.json")
    assert main([a, "--out", str(tmp_path / "old.png")]) == 0  # the argparse spelling of python -m affectgpt.eval.plots
    assert main([f"results={a}", f"out={tmp_path / 'new.svg'}"]) == 0
    assert main([f"--out={tmp_path / 'eq.png'}", a]) == 0
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("old.png", "new.svg", "eq.png"))
    capsys.readouterr()
    (tmp_path / "odd.json").write_text('{"x": 1}')
    for args, message in (([a], "missing argument out=..."),
                          ([f"out={tmp_path / 'x.png'}"], "missing argument results=..."),
                          ([str(tmp_path / "nope.json"), "--out", "x.png"], "nope.json"),
                          ([str(tmp_path / "odd.json"), "--out", "x.png"], "x.png: cannot draw the plot"),
                          ([a, "--out", "x.png", "dpi=3"], "unknown key 'dpi'")):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (args, err)
