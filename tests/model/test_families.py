"""LLM families: tiny random Llama-3, Mistral, Gemma 2, Gemma 3, Phi-3 and Qwen3 models, each with a
chat template written here in that family's documented format and a vocabulary without the
placeholder tokens, through the whole path: prompt through the template (system message merged
where the template refuses or drops it), pad token without resizing, placeholder rows added
without untying a tied head, LoRA targets by module type, one training step, logits after
reloading the checkpoint equal to those at the end of training, greedy generation that stops at
the template's end-of-turn token (and at EOS), merged + adapter exports, and the same JSON from
the checkpoint and both exports.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from helpers import cache_arg, compose

# ----------------------------------------------------------------------------- chat templates
# Meta-Llama-3-8B-Instruct (tokenizer_config.json): headers, <|eot_id|> ends every turn.
LLAMA3 = (
    r"{% set loop_messages = messages %}{% for message in loop_messages %}"
    r"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim"
    r" + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    r"{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Mistral-7B-Instruct-v0.1: [INST] ... [/INST], the answer closed by </s>; a system message raises.
MISTRAL = (r"{{ bos_token }}{% for message in messages %}"
           r"{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
           r"{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
           r"{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
           r"{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
           r"{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
# gemma-2-*-it: <start_of_turn>user / model ... <end_of_turn>; "System role not supported".
GEMMA2 = (
    r"{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    r"{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    r"{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    r"{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    r"{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    r"{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
# gemma-3-*-it (text part): the template itself puts the system text before the first user turn.
GEMMA3 = (r"{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
          r"{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}"
          r"{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
          r"{%- for message in loop_messages -%}{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
          r"{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
          r"{%- if (message['role'] == 'assistant') -%}{%- set role = 'model' -%}{%- else -%}"
          r"{%- set role = message['role'] -%}{%- endif -%}"
          r"{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
          r"{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
          r"{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}")
# Phi-3-mini-4k-instruct (first release): <|user|> ... <|end|> <|assistant|>; a system message is silently dropped.
PHI3 = (r"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}"
        r"{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}"
        r"{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}")
# Qwen3 (plain conversations): ChatML; the last answer carries an empty think block, and
# enable_thinking=false puts it into the generation prompt.
QWEN3 = (r"{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}"
         r"{%- endif %}{%- for message in messages %}{%- if message.role == 'user' %}"
         r"{{- '<|im_start|>user\n' + message.content + '<|im_end|>\n' }}{%- elif message.role == 'assistant' %}"
         r"{{- '<|im_start|>assistant\n' }}{%- if loop.last %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}"
         r"{{- message.content + '<|im_end|>\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}"
         r"{{- '<|im_start|>assistant\n' }}{%- if enable_thinking is defined and enable_thinking is false %}"
         r"{{- '<think>\n\n</think>\n\n' }}{%- endif %}{%- endif %}")

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=1024)
PROJECTIONS = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


@dataclass(frozen=True)
class Family:
    name: str
    model_type: str
    template: str
    specials: dict  # bos/eos/unk/pad -> token (pad absent: the family ships none)
    extra_specials: tuple
    end_of_turn: str
    tied: bool
    system: str  # "turn": its own turn | "merged": we merge it | "template": the template merges it
    lora: tuple = tuple(PROJECTIONS)
    config: dict = field(default_factory=dict)


FAMILIES = [
    Family("llama3", "llama", LLAMA3, {"bos": "<|begin_of_text|>", "eos": "<|end_of_text|>"},
           ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|finetune_right_pad_id|>"), "<|eot_id|>",
           True, "turn", config={"head_dim": 16}),
    Family("mistral", "mistral", MISTRAL, {"bos": "<s>", "eos": "</s>", "unk": "<unk>"}, (), "</s>", False, "merged",
           config={"sliding_window": 512, "head_dim": 16}),
    Family("gemma2", "gemma2", GEMMA2, {"bos": "<bos>", "eos": "<eos>", "unk": "<unk>", "pad": "<pad>"},
           ("<start_of_turn>", "<end_of_turn>"), "<end_of_turn>", True, "merged",
           config={"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 512,
                   "final_logit_softcapping": 0.25}),
    Family("gemma3", "gemma3_text", GEMMA3, {"bos": "<bos>", "eos": "<eos>", "unk": "<unk>", "pad": "<pad>"},
           ("<start_of_turn>", "<end_of_turn>"), "<end_of_turn>", True, "template",
           config={"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 512}),
    Family("phi3", "phi3", PHI3, {"bos": "<s>", "eos": "<|endoftext|>", "unk": "<unk>"},
           ("<|user|>", "<|assistant|>", "<|end|>", "<|system|>"), "<|end|>", False, "merged",
           lora=("down_proj", "gate_up_proj", "o_proj", "qkv_proj")),
    Family("qwen3", "qwen3", QWEN3, {"eos": "<|im_end|>", "pad": "<|endoftext|>"},
           ("<|im_start|>", "<think>", "</think>"), "<|im_end|>", True, "turn", config={"head_dim": 16}),
]
BY_NAME = {f.name: f for f in FAMILIES}


def corpus(data: Path) -> list[str]:
    from affectgpt.data.prompts import QUESTIONS, SYSTEM_PROMPT, labels_target, user_message

    texts = [SYSTEM_PROMPT, *QUESTIONS.values(), user_message("x", "describe", 1, 1, 1), "[INST] [/INST] user model"]
    for line in (data / "train.jsonl").read_text().splitlines():
        rec = json.loads(line)
        texts += [rec["subtitle"], rec.get("description") or "", labels_target(rec.get("emotions") or [])]
    return texts


def write_family(fam: Family, folder: Path, texts: list[str]) -> Path:
    """A save_pretrained folder: a tiny random model of the family + a byte-level BPE tokenizer
    with the family's special tokens and chat template, and no placeholder tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    specials = list(dict.fromkeys([*fam.specials.values(), *fam.extra_specials]))
    bpe = Tokenizer(models.BPE(unk_token=fam.specials.get("unk")))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, clean_up_tokenization_spaces=False,
                                  additional_special_tokens=list(fam.extra_specials),
                                  **{f"{k}_token": v for k, v in fam.specials.items()})
    tok.chat_template = fam.template
    ids = {f"{k}_token_id": tok.convert_tokens_to_ids(v) for k, v in fam.specials.items() if k != "unk"}
    torch.manual_seed(0)
    cfg = AutoConfig.for_model(fam.model_type, **TINY, **fam.config, vocab_size=len(tok),
                               tie_word_embeddings=fam.tied, **{"pad_token_id": None, **ids})
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory, data) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    texts = corpus(data)
    return {f.name: write_family(f, root / f.name, texts) for f in FAMILIES}


def family_cfg(data: Path, folder: Path, out: Path, *extra: str):
    return compose(out, data, cache_arg(data), f"model.llm.name_or_path={folder}", *extra)


def build(data, folder, tmp_path):
    from affectgpt.model.build import build_model

    torch.manual_seed(0)
    return build_model(family_cfg(data, folder, tmp_path).model)


# ----------------------------------------------------------------------------- no training needed
@pytest.mark.parametrize("name", list(BY_NAME))
def test_prompt_pad_rows_and_lora_targets(name, data, folders, tmp_path):
    from transformers import AutoTokenizer

    from affectgpt.data.collate import Collator
    from affectgpt.data.prompts import SYSTEM_PROMPT, build_messages, render_prompt
    from affectgpt.model.llm import embeddings_tied
    from affectgpt.model.tokenizer import MODALITY_TOKENS, end_of_turn_id

    fam = BY_NAME[name]
    plain = AutoTokenizer.from_pretrained(folders[name])
    model = build(data, folders[name], tmp_path)
    tok, base = model.tokenizer, model.llm.get_base_model()
    # placeholders appended after the family's own ids; a pad token without any new id
    placeholders = {t: tok.convert_tokens_to_ids(t) for t in MODALITY_TOKENS.values()}
    assert len(tok) == len(plain) + 3 and all(i >= len(plain) for i in placeholders.values())
    assert tok.get_vocab() == {**plain.get_vocab(), **placeholders}
    expected_pad = fam.specials.get("pad") or {"llama3": "<|finetune_right_pad_id|>", "mistral": "<unk>",
                                               "phi3": "<|endoftext|>"}[name]
    assert tok.pad_token == expected_pad and tok.pad_token_id < len(plain)
    # the table grew by exactly the placeholders; a tied head stays tied, an untied one gets its own rows
    assert base.get_input_embeddings().weight.shape[0] == len(tok) and embeddings_tied(base) == fam.tied
    assert (model.added_rows.output is None) == fam.tied and model.added_rows.start == len(plain)
    mean = base.get_input_embeddings().weight[: len(plain)].mean(0)
    assert torch.allclose(base.get_input_embeddings().weight[len(plain):], mean.expand(3, -1), atol=1e-6)
    # LoRA on every linear layer of the blocks, by module type
    assert sorted(model.llm.peft_config["default"].target_modules) == sorted(fam.lora)
    assert not model.llm.peft_config["default"].modules_to_save  # the tiny LLM's trainable norm is not applied
    # the prompt through the template; the system text in its own turn or merged into the user's
    msgs = build_messages("I can't believe it.", "describe", 2, 1)
    text = render_prompt(tok, msgs)
    assert SYSTEM_PROMPT in text and text.count(SYSTEM_PROMPT) == 1
    if fam.system == "turn":
        assert text.index(SYSTEM_PROMPT) < text.index("I can't believe it.")
    else:  # one user turn that starts with the system text
        assert f"{SYSTEM_PROMPT}\n\nAudio: " in text
    # the template's end-of-turn token closes every training target; generation stops there and at eos
    eot = tok.convert_tokens_to_ids(fam.end_of_turn)
    assert end_of_turn_id(tok) == eot and model.stop_ids[0] == eot and tok.eos_token_id in model.stop_ids
    item = {"name": "a", "subtitle": "Fine.", "task": "labels", "target": "The character's emotional state is calm.",
            "error": None, "frames": torch.zeros(8, 3, 64, 64), "audio": torch.zeros(16000)}
    batch = Collator(tok, model.token_plan(), max_length=4096)([item])
    labels = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert labels[-1] == eot and tok.decode(labels[:-1]) == item["target"]
    if name == "qwen3":
        assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.parametrize("name", ["gemma2", "phi3"])
def test_training_loss_uses_the_logits_the_family_generates_from(name, data, folders, tmp_path):
    """Gemma 2 soft-caps its final logits; the loss on target positions must equal cross-entropy of
    the full model's own logits (a loss from the bare head would differ)."""
    import torch.nn.functional as F

    from affectgpt.data.collate import ClipDataset, Collator
    from affectgpt.data.manifest import read_manifest

    model = build(data, folders[name], tmp_path)
    model.eval()
    samples = read_manifest(data / "train.jsonl")[:2]
    items = [ClipDataset(samples, model.token_plan(), describe_ratio=0.0)[i] for i in range(2)]
    batch = Collator(model.tokenizer, model.token_plan(), max_length=4096, train=True)(items)
    with torch.no_grad():
        loss_sum = model(batch).loss_sum
        logits = model.llm(inputs_embeds=model.embed(batch, model.encode_media(batch)),
                           attention_mask=batch["attention_mask"]).logits.float()
    labels = batch["labels"][:, 1:]
    full = F.cross_entropy(logits[:, :-1][labels != -100], labels[labels != -100], reduction="sum")
    tol = 1e-4 * full.item()
    assert abs(loss_sum.item() - full.item()) <= tol
    if name == "gemma2":
        head = model.llm.get_base_model().get_output_embeddings()
        hidden = model.llm.get_base_model().get_decoder()(inputs_embeds=model.embed(batch, model.encode_media(batch)),
                                                           attention_mask=batch["attention_mask"]).last_hidden_state
        bare = F.cross_entropy(head(hidden[:, :-1][labels != -100]).float(), labels[labels != -100], reduction="sum")
        assert abs(bare.item() - full.item()) > 10 * tol  # soft-capping matters at cap 0.25 (tiny logits are small)


def test_architecture_record_check_for_any_family(folders, tmp_path):
    """A record written in the legacy hub form (rope_theta at the top) matches the folder that
    transformers 5 wrote (rope_parameters); a differing field is named."""
    from affectgpt.model.llm import LLMConfig, build_base_llm

    for name in ("gemma3", "phi3", "llama3"):
        found = json.loads((folders[name] / "config.json").read_text())
        theta = found["rope_parameters"]["rope_theta"] if "rope_theta" in found["rope_parameters"] else \
            found["rope_parameters"]["full_attention"]["rope_theta"]
        record = {"model_type": found["model_type"], "hidden_size": 64, "num_hidden_layers": 2,
                  "vocab_size": found["vocab_size"], "tie_word_embeddings": found["tie_word_embeddings"],
                  "rope_theta": theta}
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
        build_base_llm(LLMConfig(name_or_path=str(folders[name]), dtype="float32",
                                 architecture=str(tmp_path / f"{name}.json")))
        (tmp_path / f"{name}-bad.json").write_text(json.dumps({**record, "rope_theta": theta * 2}))
        with pytest.raises(ValueError, match=r"does not match the architecture .*rope_parameters"):
            build_base_llm(LLMConfig(name_or_path=str(folders[name]), dtype="float32",
                                     architecture=str(tmp_path / f"{name}-bad.json")))


# ----------------------------------------------------------------------------- train, reload, export, infer
@dataclass
class Trained:
    fam: Family
    out: Path
    checkpoint: Path
    model: object  # the model at the end of training, in memory
    batch: dict
    logits: torch.Tensor  # its logits on ``batch``
    sample: object


def eval_batch(model, data: Path) -> tuple[dict, object]:
    from affectgpt.data.manifest import read_manifest
    from affectgpt.runtime.inference import iter_batches

    samples = read_manifest(data / "test.jsonl")[:2]
    batch = next(iter_batches(model, samples, "describe", batch_size=2, num_workers=0))
    feats = model.encode_media(batch)  # the frozen encoders once; every reload gets the same features
    return {**batch, "video_feats": feats["video"], "audio_feats": feats["audio"]}, samples[0]


def all_logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        embeds = model.embed(batch, model.encode_media(batch))
        return model.llm(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits


@pytest.fixture(scope="module", params=list(BY_NAME))
def trained(request, tmp_path_factory, data, folders) -> Trained:
    from affectgpt.recipe.training import TrainRecipe

    fam = BY_NAME[request.param]
    out = tmp_path_factory.mktemp(f"train-{fam.name}")
    recipe = TrainRecipe(family_cfg(data, folders[fam.name], out, "trainer.max_steps=1", "trainer.warmup_steps=0",
                                    "trainer.batch_size=4"))
    recipe.setup()
    recipe.train()
    model = recipe.accelerator.unwrap_model(recipe.model)
    model.eval()
    batch, sample = eval_batch(model, data)
    return Trained(fam, out, out / "checkpoints" / "final", model, batch, all_logits(model, batch), sample)


@pytest.mark.integration
def test_logits_after_reloading_the_checkpoint_equal_those_at_the_end_of_training(trained):
    from safetensors.torch import load_file

    from affectgpt.model.affectgpt import AffectGPT

    saved = load_file(str(trained.checkpoint / "trainable.safetensors"))
    rows = {k for k in saved if k.startswith("added_rows.")}
    assert rows == ({"added_rows.input"} if trained.fam.tied else {"added_rows.input", "added_rows.output"})
    assert any(".lora_A." in k for k in saved) and not any("modules_to_save" in k for k in saved)
    torch.manual_seed(12345)  # a reload must not depend on the generator's state
    model = AffectGPT.from_pretrained(trained.checkpoint)
    diff = (all_logits(model, trained.batch) - trained.logits).abs().max().item()
    assert diff == 0.0, f"{trained.fam.name}: logits after reload differ by {diff}"


@pytest.mark.integration
@pytest.mark.parametrize("stop", ["end_of_turn", "eos"])
def test_greedy_generation_stops_at_the_end_of_turn_token_and_at_eos(trained, stop):
    model = trained.model
    tok = model.tokenizer
    token = tok.convert_tokens_to_ids(trained.fam.end_of_turn) if stop == "end_of_turn" else tok.eos_token_id
    head = model.llm.get_base_model().get_output_embeddings()
    calls = []

    def force_stop_at_third_token(_module, _inputs, output):
        calls.append(output.shape[1])
        if len(calls) == 3:
            output = output.clone()
            output[:, -1, token] = 1e4
        return output

    handle = head.register_forward_hook(force_stop_at_third_token)
    try:
        texts = model.generate(trained.batch, max_new_tokens=12)
    finally:
        handle.remove()
    assert len(calls) == 3, f"{trained.fam.name}: generation did not stop at {stop} (ran {len(calls)} steps)"
    assert len(texts) == 2 and all(trained.fam.end_of_turn not in t for t in texts)


@pytest.mark.integration
def test_exports_merged_and_adapter_infer_the_same_json_as_the_checkpoint(trained, tmp_path):
    """With seeded noise on LoRA B and on the added rows (one step leaves B near zero and the rows
    at their initial mean, where a lost row or a wrong merge would go unseen)."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    from affectgpt.runtime.export import export
    from affectgpt.runtime.inference import load_model, predict_one

    ckpt = tmp_path / "ckpt"
    shutil.copytree(trained.checkpoint, ckpt)
    state = load_file(str(ckpt / "trainable.safetensors"))
    g = torch.Generator().manual_seed(0)
    for k, v in state.items():
        if ".lora_B." in k or k.startswith("added_rows."):
            state[k] = v + 0.5 * torch.randn(v.shape, generator=g)
    save_file(state, str(ckpt / "trainable.safetensors"), metadata={"format": "affectgpt-trainable"})
    export(ckpt, tmp_path / "adapter")
    export(ckpt, tmp_path / "merged", merge=True)
    with open(tmp_path / "adapter" / "affectgpt.json") as f:
        assert json.load(f)["llm"]["vocab_size"] == trained.logits.shape[-1]
    bundle = load_file(str(tmp_path / "adapter" / "adapters.safetensors"))
    assert torch.equal(bundle["added_rows.input"], state["added_rows.input"])
    assert not any(k.startswith("added_rows.") for k in load_file(str(tmp_path / "merged" / "adapters.safetensors")))
    lora_file = tmp_path / "adapter" / "llm_adapter" / "adapter_model.safetensors"
    assert not any("embed" in k for k in load_file(str(lora_file)))  # no copy of the whole table

    gen = {"max_new_tokens": 6, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "num_beams": 1}
    rows, tables = {}, {}
    for seed, (kind, path) in enumerate((("checkpoint", ckpt), ("adapter", tmp_path / "adapter"),
                                         ("merged", tmp_path / "merged"))):
        loaded = load_model(path)
        torch.manual_seed(seed)  # no hidden dependence on the generator
        rows[kind], _ = predict_one(loaded.model, trained.sample, "describe", gen, system=loaded.system)
        tables[kind] = loaded.model.llm.get_input_embeddings().weight[trained.logits.shape[-1] - 3:].detach().clone()
    assert torch.equal(tables["checkpoint"], state["added_rows.input"].to(tables["checkpoint"].dtype))
    assert all(torch.equal(tables[k], tables["checkpoint"]) for k in tables)
    assert json.dumps(rows["adapter"]) == json.dumps(rows["checkpoint"]) == json.dumps(rows["merged"]), rows
    assert rows["checkpoint"]["description"], rows
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged" / "llm")
    assert merged.config.model_type == trained.fam.model_type and not hasattr(merged, "peft_config")
    assert (merged.get_output_embeddings().weight is merged.get_input_embeddings().weight) == trained.fam.tied


def test_the_tiny_llms_trainable_norm_is_for_the_tiny_llm_only(data, folders, tmp_path):
    from affectgpt.model.config import model_config

    tiny = model_config(compose(tmp_path, data).model)
    real = model_config(family_cfg(data, folders["llama3"], tmp_path).model)
    assert tiny.llm.lora.modules_to_save == ["model.norm"] and real.llm.lora.modules_to_save == []
    assert tiny.llm.lora.target_modules == real.llm.lora.target_modules == "auto"


def test_gguf_cli_names_a_missing_file(tmp_path):
    from affectgpt.apps.gguf import main

    assert main([str(tmp_path / "none.gguf"), str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
