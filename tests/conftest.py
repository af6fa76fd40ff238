"""Test environment (no hub downloads, no wandb network, quiet tokenizers, one OpenMP thread per
xdist worker), the tiers' markers, and the session fixtures: the synthetic dataset, the reference
training run, the exported artifacts of the inference tests, the tiny LLM of the label extractor.
The functions behind them, and everything else test modules share, are in helpers.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Under pytest-xdist (README: -n auto) every worker is one process on one core: one thread each, else
# OpenMP threads of the workers spin against each other (measured: steps 30x slower when oversubscribed).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from helpers import EXTRACTOR_CHAT_TEMPLATE, LLM_TEXTS, data_root, reference_run, shared_artifacts  # noqa: E402


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    """``data_root`` as a fixture: the training tests' synthetic dataset."""
    return data_root(tmp_path_factory)


@pytest.fixture(scope="session")
def reference(tmp_path_factory, data) -> Path:
    """``reference_run`` as a fixture: one process, batch 4, 8 steps, the run the other trainings must match."""
    return reference_run(tmp_path_factory, data)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict:
    """The export and inference tests' checkpoint, adapter export, merged export and data: made once per run,
    under pytest-xdist by the first worker that asks (the others wait on a lock in the run's shared temp folder,
    then read the same folders; no test writes into them)."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-N/, above each worker's popen-gwK/
    with open(base / "infer-shared.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return shared_artifacts(base / "infer-shared")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory):
    """A tiny random Qwen2 with a ChatML template saved locally: the LLM label extractor's tests."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    d = tmp_path_factory.mktemp("tiny_qwen2")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(
        LLM_TEXTS * 20 + ["happy, sad, angry, worried, [ ] emotion description person"] * 20, trainer
    )
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = EXTRACTOR_CHAT_TEMPLATE
    tok.save_pretrained(d)
    cfg = transformers.Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                                   eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(d)
    return d





# Tests that take a trained checkpoint from this file's session fixtures train a model (once per worker):
# integration, whether or not their file says so (a module's own fixture of the same name does not count).
TRAINING_FIXTURES = {"reference", "artifacts"}


def pytest_collection_modifyitems(items):
    for item in items:
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        trains = any(defs.get(name) and defs[name][-1].func.__module__ == __name__ for name in TRAINING_FIXTURES)
        if trains and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)
    # Longest files first: pytest-xdist hands out files in this order (pyproject: --no-loadscope-reorder), so the
    # rehearsals and the process-bound files start at once and the short files fill in around them; in xdist's own
    # order (most tests first) they started last and one worker ran them alone at the end. Tiers: a GPU rehearsal,
    # integration only (the launcher and DeepSpeed files), some integration, none.
    marks: dict = {}
    for item in items:
        marks.setdefault(item.path, []).append(
            (item.get_closest_marker("gpu_rehearsal") is not None, item.get_closest_marker("integration") is not None))
    tier = {path: 0 if any(r for r, _ in m) else 1 if all(i for _, i in m) else 2 if any(i for _, i in m) else 3
            for path, m in marks.items()}
    items.sort(key=lambda item: tier[item.path])  # stable: each file keeps its own order
