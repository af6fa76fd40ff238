"""Helpers that several test modules share (``from helpers import ...``): subprocess runs of the
training and inference commands, the session's synthetic dataset and reference training run, the
PyAV clip writer, the trained-and-exported artifacts of the inference tests, the tiny models built in
process. The fixtures that wrap them live in conftest.py. Test modules import these rather than
importing each other.
"""

from __future__ import annotations

import fractions
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT),
       "TOKENIZERS_PARALLELISM": "false"}


# ------------------------------------------------------------------------ training runs
# trainer.lr_llm_extra=1e-2, data.describe_ratio=0.5 (the tiny default's earlier values, under which the tolerances
# below were measured): the equivalence tests (packed vs padded, 2 ranks vs 1, resumed vs straight) compare runs
# whose sums differ in float order or whose ranks draw their own dropout masks; the default's final norm at lr 1e-1
# turns those differences into 1e-3 weight and 4e-2 loss gaps within 8 steps (1.7e-2 with the norm pinned alone).
SMALL = ["data.n_train=16", "data.n_val=2", "data.n_test=2", "trainer.batch_size=4", "trainer.warmup_steps=2",
         "trainer.standardize_samples=16", "eval.max_samples=2", "eval.max_new_tokens=2", "trainer.num_workers=0",
         "trainer.lr_llm_extra=1e-2", "data.describe_ratio=0.5"]


def data_root(tmp_path_factory) -> Path:
    """The session's synthetic dataset + tiny weights (made on first call). The tiny BPE tokenizer is trained here,
    on the dataset's own train manifest: made on first use instead, it would learn whatever manifest the first
    training test of this worker passes (a test on an edited manifest changed every later result of the worker)."""
    from affectgpt.data.synthetic import ensure_dataset
    from affectgpt.model.tiny import ensure_tiny_assets

    root = tmp_path_factory.getbasetemp() / "syn16"
    ensure_dataset(root, seed=0, n_train=16, n_val=2, n_test=2)
    ensure_tiny_assets(root / "tiny-pretrained-bpe", 1234, "bpe", root / "train.jsonl")
    return root


REFERENCE_STEPS = ["trainer.max_steps=8", "trainer.save_every=2", "trainer.keep_last=2", "features.shard_size=8"]


def cache_arg(data: Path) -> str:
    return f"features.cache_dir={data / 'features'}"


def reference_run(tmp_path_factory, data: Path) -> Path:
    """8 uninterrupted steps on the shared feature cache (run once per session, then reused)."""
    out = tmp_path_factory.getbasetemp() / "reference-run"
    if not (out / "checkpoints" / "final" / "COMPLETE").is_file():
        r = run(train_cmd(out, data, *REFERENCE_STEPS, cache_arg(data)))
        assert r.returncode == 0, r.stderr[-3000:]
    return out


def compose(output_dir: Path, data: Path, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from affectgpt.core.config import register

    register()  # the configs' schemas (conf/*.yaml select them in their defaults)
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=[f"output_dir={output_dir}", f"data.root={data}", *SMALL, *overrides])


def env() -> dict:
    """The environment of a training subprocess: ENV, one OpenMP thread."""
    return {**ENV, "OMP_NUM_THREADS": "1"}


def train_cmd(output_dir: Path, data: Path, *overrides: str) -> list[str]:
    return [sys.executable, "train.py", f"output_dir={output_dir}", f"data.root={data}", *SMALL, *overrides]


def run(cmd: list[str], timeout: int = 300, process: bool = False) -> subprocess.CompletedProcess:
    """A training command (``train_cmd``) in the repository root, output captured. A single-process
    ``train.py`` without DeepSpeed runs in this process (``run_in_process``: the same losses bit for bit,
    5 times faster on the tiny runs); ``process=True``, DeepSpeed and launchers take a new process (DeepSpeed
    keeps process-group caches that a second run in one process trips over: measured)."""
    if not process and cmd[:2] == [sys.executable, "train.py"] and not any("deepspeed" in a for a in cmd):
        return run_in_process(cmd[1:])
    return subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)


def losses(output_dir: Path, name: str = "final") -> list[float]:
    state = json.loads((Path(output_dir) / "checkpoints" / name / "trainer_state.json").read_text())
    return [h["loss"] for h in state["history"] if "loss" in h]


def weights(output_dir: Path, name: str = "final") -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(output_dir) / "checkpoints" / name / "trainable.safetensors"))


def max_weight_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# ------------------------------------------------------------------------ clips
def frame_image(i: int, width: int, height: int) -> np.ndarray:
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = 10 * (i % 25)
    img[..., 1] = 10 * (i // 25)
    img[..., 2] = 128
    return img


def tone(seconds: float, rate: int, channels: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    x = np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x * (0.4 if c == 0 else 0.2) for c in range(channels)])  # [C, N]


def write_clip(
    path: Path,
    n_frames: int = 30,
    fps: int = 15,
    size: tuple[int, int] = (64, 48),
    sample_rate: int | None = 16000,
    channels: int = 1,
    audio_seconds: float | None = None,
    freq: float = 440.0,
    vcodec: str | None = "h264",
    acodec: str = "aac",
    fmt: str | None = None,
    pts_ms: list[int] | None = None,
    rotation: int | None = None,
    image=frame_image,
    options: dict | None = None,
) -> Path:
    """A real clip: ``vcodec`` None → audio-only, ``sample_rate`` None → no audio track;
    ``pts_ms`` gives each frame's time (variable frame rate); ``rotation`` sets the
    display matrix (degrees counter-clockwise)."""
    import av
    width, height = size
    c = av.open(str(path), "w", format=fmt, options=options or {})
    vs = as_ = None
    if vcodec is not None:
        vs = c.add_stream(vcodec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        if pts_ms is not None:
            vs.time_base = vs.codec_context.time_base = fractions.Fraction(1, 1000)
        if rotation is not None:
            vs.set_display_rotation(rotation)
    if sample_rate is not None:
        as_ = c.add_stream(acodec, rate=sample_rate, layout="mono" if channels == 1 else "stereo")
    if vs is not None:
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(image(i, width, height), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], fractions.Fraction(1, 1000)
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
    if as_ is not None:
        seconds = audio_seconds if audio_seconds is not None else n_frames / fps
        wave = tone(seconds, sample_rate, channels, freq)
        step = as_.codec_context.frame_size or 1024
        layout = "mono" if channels == 1 else "stereo"
        for s in range(0, wave.shape[1], step):
            chunk = wave[:, s : s + step]
            if acodec.startswith("pcm"):  # packed int16, channels interleaved
                chunk, sample_fmt = (chunk.T.reshape(1, -1) * 32767).astype(np.int16), "s16"
            else:
                sample_fmt = "fltp"
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=sample_fmt, layout=layout)
            frame.sample_rate, frame.pts = sample_rate, s
            for p in as_.encode(frame):
                c.mux(p)
        for p in as_.encode():
            c.mux(p)
    c.close()
    return path


# ------------------------------------------------------------------------ exported artifacts
def run_python(args, timeout=300) -> subprocess.CompletedProcess:
    """``python ARGS`` in the repository root with ENV, output captured."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def perturb_lora(checkpoint: Path, seed: int = 0) -> None:
    """Make LoRA matter: seeded noise on every lora_B and on the trained final norm."""
    import torch
    from safetensors.torch import load_file, save_file

    path = checkpoint / "trainable.safetensors"
    state = load_file(str(path))
    g = torch.Generator().manual_seed(seed)
    for k, v in state.items():
        if ".lora_B." in k:
            state[k] = v + 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith("norm.modules_to_save.default.weight"):
            state[k] = v * (1 + 0.5 * torch.randn(v.shape, generator=g))
    save_file(state, str(path), metadata={"format": "affectgpt-trainable"})
    recomplete(checkpoint)


def recomplete(checkpoint: Path) -> None:
    """After a test edits a checkpoint's files in place: its COMPLETE marker lists their new sizes (as a
    checkpoint made that way on purpose would), so the edit, not the size check, is what the test meets."""
    marker = checkpoint / "COMPLETE"
    if not marker.is_file():
        return
    record = json.loads(marker.read_text())
    record["files"] = {name: (checkpoint / name).stat().st_size if (checkpoint / name).is_file() else size
                       for name, size in record["files"].items()}
    marker.write_text(json.dumps(record, indent=0) + "\n")


def shared_artifacts(base: Path) -> dict:
    """Train once per session (2 steps, 16 clips), then the adapter export through the CLI and
    the merged export through the library, all in this process. Later callers get the same folders."""
    done = base / "artifacts.json"
    if done.is_file():
        return {k: Path(v) for k, v in json.loads(done.read_text()).items()}
    out, data = base / "run", base / "syn"
    r = run_in_process(["train.py", f"output_dir={out}", f"data.root={data}", "seed=1", "trainer.max_steps=2",
                    "data.n_train=16", "data.n_val=2", "data.n_test=6", "trainer.batch_size=4",
                    "trainer.standardize_samples=16", "trainer.num_workers=0", "eval.max_samples=2",
                    "eval.max_new_tokens=4"])
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = out / "checkpoints" / "final"
    perturb_lora(ckpt)
    r = run_in_process(["-m", "affectgpt.export", f"checkpoint={ckpt}", f"output={base / 'adapter'}"])
    assert r.returncode == 0, r.stderr[-3000:]
    from affectgpt.runtime.export import export

    export(ckpt, base / "merged", merge=True)
    paths = {"checkpoint": ckpt, "adapter": base / "adapter", "merged": base / "merged", "data": data}
    done.write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    return paths


# ----------------------------------------------------------------------------- LLM label extractor
EXTRACTOR_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLM_TEXTS = ["He frowns and shouts. He seems angry.", "She smiles warmly; she is happy and relaxed."]


# ----------------------------------------------------------------------------- tiny models built in process
TEXTS = [
    ("The man frowns and his voice is loud.", "He looks angry and speaks loudly.", ["angry"]),
    ("She smiles.", "She smiles warmly; her tone is calm.", ["happy", "calm"]),
    ("I lost my keys again.", "His mouth turns down and his voice trembles.", ["sad", "anxious"]),
]


def write_text_manifest(root: Path) -> None:
    """A train.jsonl with text only: the tiny BPE tokenizer is trained on it (no media needed here)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "train.jsonl").open("w") as f:
        for i, (sub, desc, emo) in enumerate(TEXTS * 3):
            row = {"name": f"s{i}", "video": f"s{i}.mp4", "subtitle": sub, "description": desc, "emotions": emo}
            f.write(json.dumps(row) + "\n")


def tiny_cfg(data_root, *extra):
    """The tiny model's config (conf/train.yaml, model=tiny) with its assets under ``data_root``."""
    from affectgpt.apps.summary import compose as compose_model

    return compose_model(["model=tiny", f"data.root={data_root}", *extra]).model


def build(cfg, **kw):
    """build_model from a fixed seed."""
    import torch

    from affectgpt.model.build import build_model

    torch.manual_seed(0)
    return build_model(cfg, **kw)


def make_items(n_frames=8, size=64, with_audio=(True, False, True), with_video=(True, True, False),
               seconds=(1.3, 0, 2.0)):
    """Collator items: a describe and a labels sample, with and without audio or video."""
    import torch

    g = torch.Generator().manual_seed(1)
    items = []
    for i, (a, v, s) in enumerate(zip(with_audio, with_video, seconds, strict=True)):
        sub, desc, emo = TEXTS[i % len(TEXTS)]
        items.append({"name": f"clip{i}", "subtitle": sub, "task": "describe" if i % 2 == 0 else "labels",
                      "target": desc if i % 2 == 0 else "The character's emotional state is " + " and ".join(emo) + ".",
                      "error": None,
                      "frames": torch.rand(n_frames, 3, size, size, generator=g) if v else None,
                      "audio": (torch.randn(int(s * 16000), generator=g) * 0.1) if a else None})
    return items


def run_in_process(args, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python SCRIPT ARGS`` or ``python -m MODULE ARGS`` (``args``: a script of the repository, or ``-m`` and a
    module, then the arguments) run in this process,
    as ``run_python`` runs it in a new one: its exit code, stdout and stderr. For the tests whose point is the
    command's answer, not the process (each command keeps subprocess tests of its own): the imports (8 s of a
    13 s tiny training run) are paid once per worker. What a run leaves in the process is put back: the
    environment, the working folder, ``sys.argv``, the root logger's handlers, the thread count (one, as in
    ``env()``, so that losses equal a subprocess's bit for bit: measured) and Accelerate's process state."""
    import contextlib
    import io
    import logging
    import runpy
    import warnings

    import torch

    out, err = io.StringIO(), io.StringIO()
    argv, before, environ, threads = sys.argv, os.getcwd(), dict(os.environ), torch.get_num_threads()
    handlers, level = list(logging.root.handlers), logging.root.level
    code = 0
    try:
        module = args[1] if args[0] == "-m" else None
        sys.argv = [module or str(ROOT / args[0]), *args[2 if module else 1:]]
        os.chdir(cwd)
        torch.set_num_threads(1)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if module:
                with warnings.catch_warnings():  # runpy's note that the module was imported before (by a test)
                    warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
                    runpy.run_module(module, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(str(ROOT / args[0]), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        sys.argv = argv
        os.chdir(before)
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)
        logging.root.handlers[:], logging.root.level = handlers, level
        _reset_accelerate()
    return subprocess.CompletedProcess([sys.executable, *args], code, out.getvalue(), err.getvalue())


def _reset_accelerate() -> None:
    """Forget Accelerate's process state, so the next in-process run may choose its own precision."""
    if "accelerate" in sys.modules:
        from accelerate.state import AcceleratorState, GradientState, PartialState

        AcceleratorState._reset_state(reset_partial_state=True)
        PartialState._reset_state()
        GradientState._reset_state()
