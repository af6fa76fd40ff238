"""Command lines: free text and paths reach the program unchanged; bad arguments exit 2 with one line.

The parsing is checked in process on every app's real config; ``infer.py`` is then run as a user
runs it, once per kind of subtitle a real dataset has, and on a file name with a space, a comma and '='.
"""

import json
import shutil

import pytest

from affectgpt.apps.cli import TRAIN_VERBATIM, Command, UsageError, compose, run
from helpers import run_in_process, run_python

INFER = Command(prog="python infer.py", config="infer",
                verbatim=("checkpoint", "video", "audio", "subtitle", "subtitle_file", "manifest", "output"))
TRAIN = Command(prog="python train.py", config="train", verbatim=TRAIN_VERBATIM)
SUBTITLES = ["I can't believe it.", 'Well, yes, I did: "fine".', "a=b [really]", "我真的不敢相信。",
             "First line,\nsecond line."]
ODD = ["${oc.env:HOME}", "\\${x}", "50% {braces} ~tilde 'single' \\backslash", " padded ", "--looks-like-a-flag"]


@pytest.mark.parametrize("text", SUBTITLES + ODD)
def test_free_text_is_taken_verbatim(text):
    cfg = compose(INFER, ["checkpoint=ck", f"subtitle={text}", f"video=/tmp/a b,c=d/{text}.mp4"])
    assert cfg.subtitle == text
    assert cfg.video == f"/tmp/a b,c=d/{text}.mp4"


def test_other_overrides_keep_hydra_syntax_and_types():
    cfg = compose(INFER, ["checkpoint=ck", "batch_size=4", "do_sample=true", "temperature=0.7", "task=labels"])
    assert (cfg.batch_size, cfg.do_sample, cfg.temperature, cfg.task) == (4, True, 0.7, "labels")
    cfg = compose(TRAIN, ["model=affectgpt-mid", "trainer.lr=2e-4", "features.splits=train,val",
                          "output_dir=/tmp/run one, two", "data.root=/tmp/d=1"])
    assert cfg.model.name == "affectgpt-mid" and cfg.trainer.lr == 2e-4
    assert list(cfg.features.splits) == ["train", "val"]  # a comma list is a list where the option is one
    assert cfg.output_dir == "/tmp/run one, two" and cfg.data.train_manifest == "/tmp/d=1/train.jsonl"
    assert compose(TRAIN, ["trainer.lr=1"]).trainer.lr == 1.0  # an int where a float is expected is fine


def test_an_empty_verbatim_value_means_the_default_and_null_means_none():
    assert compose(INFER, ["checkpoint=ck", "video="]).video is None
    assert compose(TRAIN, ["features.cache_dir=null"]).features.cache_dir is None
    assert compose(INFER, ["checkpoint=ck", "merge_lora=true"]).merge_lora is True  # auto | true | false


@pytest.mark.parametrize("args, message", [
    (["checkpoint=ck", "subtitle=a", "subtitle=b"], "subtitle= is given twice"),
    (["checkpoint=ck", "foo=1"], "unknown key 'foo' in conf/infer.yaml"),
    (["checkpoint=ck", "batch_size=abc"], "batch_size expects an integer (default 8)"),
    (["checkpoint=ck", "profile=yes"], "profile expects true or false"),
    (["checkpoint=ck", "task=describe,labels"], "a comma makes a list, but task takes one value"),
    (["checkpoint=ck", "max_new_tokens=[1"], "not a valid override"),
    (["checkpoint=ck", "checkpoint"], "argument 'checkpoint': expected key=value"),
    (["video=x.mp4"], "missing argument checkpoint=..."),
    (["checkpoint=ck", "+batch_size=2"], "batch_size exists already"),
    (["checkpoint=ck", "~task"], "deleting keys is not supported"),
])
def test_bad_arguments_are_named(args, message):
    with pytest.raises(UsageError) as e:
        compose(INFER, args)
    assert message in str(e.value), str(e.value)


@pytest.mark.parametrize("args, message", [
    (["model=nope"], "no conf/model/nope.yaml (choices: affectgpt-7b, affectgpt-mid, affectgpt-official, "
                     "affectgpt-official-frame, tiny)"),
    (["trainer.max_steps=1.5"], "trainer.max_steps expects an integer (default 1200)"),
    (["trainer=[1]"], "no conf/trainer/[1].yaml"),
    (["trainer.lora=1"], "unknown key 'trainer.lora'"),
    (["model.llm.lora=1"], "model.llm.lora is a group of options"),
])
def test_bad_training_arguments_are_named(args, message):
    with pytest.raises(UsageError) as e:
        compose(TRAIN, args)
    assert message in str(e.value), str(e.value)


@pytest.mark.parametrize("args, message", [
    (["model.vision.frames=abc"],
     "argument 'model.vision.frames=abc': model.vision.frames expects an integer (default 8)"),
    (["model.vision.nope=1"], "argument 'model.vision.nope=1': unknown key 'model.vision.nope' in conf/train.yaml"),
    (["+model.vision.nope=1"], "argument '+model.vision.nope=1': unknown key 'model.vision.nope'"),
    (["model=affectgpt-7b", "model.llm.lora.r=x"], "model.llm.lora.r expects an integer (default 16)"),
    (["model.video_adapter.standardize=yes"], "model.video_adapter.standardize expects true or false"),
])
def test_the_model_group_is_typed(capsys, args, message):
    """conf/model/*.yaml is typed by the dataclasses the model is built from: the real train command refuses a
    bad model value with exit 2 and one line naming the argument, before it builds anything."""
    from affectgpt.apps.train import TRAIN, main

    assert run(TRAIN, main, args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_the_model_schema_is_what_the_builder_takes():
    from dataclasses import fields

    from affectgpt.core.model_config import META_KEYS, ModelConfig, ModelSchema

    cfg = compose(TRAIN, ["model=affectgpt-official"])
    assert cfg.model.vision.kind == "hf_clip" and cfg.model.audio_adapter.num_query_tokens == 1
    assert {f.name for f in fields(ModelSchema)} == {f.name for f in fields(ModelConfig)} | META_KEYS
    assert compose(TRAIN, ["model.llm.gradient_checkpointing=mlp"]).model.llm.gradient_checkpointing == "mlp"
    assert list(compose(TRAIN, ["+model.tiny_llm_lora.enabled=false"]).model.tiny_llm_lora) == [
        "modules_to_save", "enabled"]  # a free dictionary still takes new keys


@pytest.mark.parametrize("config, args, key", [
    ("bench", ["checkpoint=a"], "root"),          # the first key still ??? in the config's order
    ("bench", ["checkpoint=a", "root=r"], "output"),
    ("unibench_score", [], "gold"),
    ("train", ["data.kind=???"], "data.kind"),   # nested keys too
])
def test_required_arguments_are_the_keys_left_missing(config, args, key):
    with pytest.raises(UsageError, match=rf"missing argument {key}=\.\.\."):
        compose(Command(prog="prog", config=config, verbatim=("checkpoint", "root")), args)


def test_run_prints_one_line_and_returns_2(capsys):
    def program(cfg):
        raise UsageError(f"{cfg.video}: file not found")

    assert run(INFER, program, ["checkpoint=ck", "video=my clip.mp4"]) == 2
    err = capsys.readouterr().err
    assert err == "error: my clip.mp4: file not found\n"
    assert run(INFER, program, ["checkpoint=ck", "bogus=1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert run(INFER, lambda cfg: None, ["checkpoint=ck", "--cfg"]) == 0
    assert "checkpoint: ck" in capsys.readouterr().out


def test_a_crash_inside_the_program_is_not_a_usage_error(capsys):
    def program(cfg):
        raise RuntimeError("model blew up")

    # a bug: exit 1 and one line naming the code location; verbose=true prints the traceback before it
    assert run(INFER, program, ["checkpoint=ck"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: internal error at tests/apps/test_cli.py:"), err
    assert "RuntimeError: model blew up" in err and "verbose=true" in err
    assert run(INFER, program, ["checkpoint=ck", "verbose=true"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and err.splitlines()[-1].startswith("error: internal")


# ----------------------------------------------------------------------------- infer.py as a user runs it
@pytest.mark.integration
@pytest.mark.parametrize("i", range(len(SUBTITLES)))
def test_infer_takes_real_subtitles_and_file_names(artifacts, tmp_path, i):
    rows = [json.loads(ln) for ln in (artifacts["data"] / "test.jsonl").read_text().splitlines()]
    clip = artifacts["data"] / rows[0]["video"]
    if i == 0:  # one of the runs also reads a file whose name has a space, a comma and '='
        odd = tmp_path / "my clips, take=2" / "clip one, a=b.mp4"
        odd.parent.mkdir()
        shutil.copy(clip, odd)
        clip = odd
    # in this process (the argv a shell would pass, unchanged): infer.py's own process is tested below and in test_infer
    r = run_in_process(["infer.py", f"checkpoint={artifacts['checkpoint']}", f"video={clip}",
                        f"subtitle={SUBTITLES[i]}", "max_new_tokens=4", "show_prompt=true"])
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout
    assert json.loads(lines[0])["name"] == clip.stem
    prompt = json.loads(next(ln for ln in r.stderr.splitlines() if ln.startswith("prompt "))[len("prompt "):])
    assert SUBTITLES[i] in prompt, prompt


@pytest.mark.integration
def test_infer_bad_overrides_exit_2_with_one_line(artifacts):
    # the first in infer.py's own process (what a shell gets: nothing a library prints on import), the rest in this one
    for i, args in enumerate((["batch_size=abc"], ["nonsense=1"], ["max_new_tokens=[1"], ["task=a,b"])):
        argv = ["infer.py", f"checkpoint={artifacts['checkpoint']}", "video=x.mp4", *args]
        r = run_python(argv) if i == 0 else run_in_process(argv)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: argument"), r.stderr
        assert "Traceback" not in r.stderr and "HYDRA_FULL_ERROR" not in r.stderr
