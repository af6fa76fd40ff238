"""AffectGPT: frozen CLIP + Whisper → trainable adapters → LLM (frozen base + LoRA).

``forward(batch)`` returns the summed target-token loss and the number of target tokens (the
trainer normalises across accumulated micro-batches); logits are computed only at target
positions, which matters with a 152k vocabulary. ``generate(batch)`` returns decoded texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from affectgpt.core.plan import IGNORE_INDEX, OFFICIAL_PLACEHOLDERS, PROMPT_STYLES, TokenPlan
from affectgpt.model.adapters import AdapterConfig, AudioAdapter, PreFusion, VideoAdapter, pad_features
from affectgpt.model.encoders import SAMPLE_RATE, AudioConfig, VisionConfig, make_audio_encoder, make_vision_encoder
from affectgpt.model.kernels import apply_kernels, fused_linear_cross_entropy
from affectgpt.model.llm import (
    LLMConfig,
    add_token_rows,
    build_base_llm,
    output_logits,
    random_tokenizer_source,
    wrap_lora,
)
from affectgpt.model.tokenizer import load_tokenizer, modality_token_ids, official_token_ids, stop_token_ids


@dataclass
class ModelConfig:
    vision: VisionConfig | None = field(default_factory=VisionConfig)
    audio: AudioConfig | None = field(default_factory=AudioConfig)
    video_adapter: AdapterConfig = field(default_factory=AdapterConfig)
    audio_adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(num_query_tokens=1))
    fusion: bool = False
    fusion_dim: int = 1024
    fusion_trainable: bool = True
    fusion_weight: str = "mlp"  # mlp (GELU, softmax) | linear (the released model's: two linears, raw weights)
    prompt: str = "chat"  # chat: the tokenizer's chat template | official: the released ###Human: format
    llm: LLMConfig = field(default_factory=LLMConfig)
    init: str = "pretrained"  # pretrained: load every frozen weight; random: build from the architectures only


# Trainable parameters live under these top-level names (the trainer's learning-rate groups).
PARAM_GROUPS = ("video_adapter", "audio_adapter", "fusion", "llm")


def param_group_of(name: str) -> str:
    """The group of a parameter name (its top-level module); frozen encoders have none."""
    head = name.split(".", 1)[0]
    if head not in PARAM_GROUPS:
        raise ValueError(f"parameter {name!r} belongs to none of the trainable groups {list(PARAM_GROUPS)}")
    return head


class AffectGPT(nn.Module):
    """weights: "pretrained" loads the encoders and the LLM from their checkpoints; "random" builds
    the same shapes from the offline architectures (any device, ``meta`` included). Adapters and
    LoRA are always freshly initialised (training checkpoints hold them)."""

    def __init__(self, cfg: ModelConfig, device: str | torch.device = "cpu", weights: str | None = None):
        super().__init__()
        weights = weights or cfg.init
        if weights not in ("pretrained", "random"):
            raise ValueError(f"model.init / weights must be 'pretrained' or 'random', got {weights!r}")
        if cfg.prompt not in PROMPT_STYLES:
            raise ValueError(f"model.prompt must be one of {PROMPT_STYLES}, got {cfg.prompt!r}")
        self.cfg, self.weights = cfg, weights
        tok_source = (
            (cfg.llm.tokenizer or cfg.llm.name_or_path) if weights == "pretrained" else random_tokenizer_source(cfg.llm)
        )
        official = cfg.prompt == "official"
        self.tokenizer = load_tokenizer(tok_source, cfg.llm.trust_remote_code,
                                        OFFICIAL_PLACEHOLDERS if official else None)
        base = build_base_llm(cfg.llm, device, weights)
        # Rows for placeholder tokens the vocabulary lacks: fixed, saved with the trainable state.
        self.added_rows = add_token_rows(base, self.tokenizer)
        # Before LoRA: the fused MLP forward calls the projections, which peft then wraps.
        self.kernels = apply_kernels(base, cfg.llm.kernels, device)
        self.llm = wrap_lora(base, cfg.llm.lora, cfg.llm.gradient_checkpointing, cfg.llm.checkpoint_every)
        # Per modality, the placeholder ids whose rows its tokens replace (official: frames or faces for video).
        self.token_ids = (official_token_ids(self.tokenizer) if official
                          else {k: (v,) for k, v in modality_token_ids(self.tokenizer).items()})
        self.stop_ids = stop_token_ids(self.tokenizer, getattr(base.generation_config, "eos_token_id", None))
        llm_dim = base.config.hidden_size
        self.vision = make_vision_encoder(cfg.vision, device, weights) if cfg.vision else None
        self.audio = make_audio_encoder(cfg.audio, device, weights) if cfg.audio else None
        self.video_adapter = (
            VideoAdapter(cfg.video_adapter, self.vision.out_dim, self.vision.tokens_per_frame, llm_dim)
            if self.vision
            else None
        )
        self.audio_adapter = AudioAdapter(cfg.audio_adapter, self.audio.out_dim, llm_dim) if self.audio else None
        self.fusion = None
        if cfg.fusion:
            if not (self.vision and self.audio):
                raise ValueError("model.fusion needs both a vision and an audio encoder")
            self.fusion = PreFusion(self.vision.out_dim, self.audio.out_dim, llm_dim, cfg.fusion_dim,
                                    cfg.fusion_weight)
        switches = {"video_adapter": cfg.video_adapter.trainable, "audio_adapter": cfg.audio_adapter.trainable,
                    "fusion": cfg.fusion_trainable}
        for name, trainable in switches.items():
            module = getattr(self, name)
            if module is not None and not trainable:
                module.requires_grad_(False)
        self.to(device)

    # ----------------------------------------------------------------- plans and state
    def token_plan(self) -> TokenPlan:
        v, a, aa = self.vision, self.audio, self.audio_adapter
        return TokenPlan(
            video_tokens=self.video_adapter.num_tokens if v else 0,
            fusion_tokens=1 if self.fusion is not None else 0,
            image_size=tuple(v.image_size) if v else (1, 1),
            interpolation=v.interpolation if v else "bicubic",
            resize_mode=v.resize_mode if v else "shortest",
            frames=v.cfg.frames if v else 1,
            audio_kind=aa.cfg.kind if a else "mean",
            audio_window=aa.window if a else 1,
            audio_stride=aa.stride if a else 1,
            audio_queries_per_window=aa.cfg.queries_per_window if a else 1,
            audio_fixed_tokens=aa.num_tokens(1) if a else 0,
            audio_max_samples=a.effective_samples(10**12) if a else 0,
            has_vision=v is not None,
            has_audio=a is not None,
            prompt_style=self.cfg.prompt,
            frame_sampling=v.cfg.frame_sampling if v else "centre",
        )

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Every trainable parameter plus the adapters' fixed feature statistics and the embedding
        rows added for placeholder tokens (buffers)."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        names |= {n for n, _ in self.named_buffers() if ".standardizer." in n or n.startswith("added_rows.")}
        return {n: t.detach() for n, t in self.state_dict().items() if n in names}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Strict: the keys must equal ``trainable_state_dict()``'s; differences are listed."""
        expected = set(self.trainable_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise RuntimeError(
                f"{source}: trainable weights do not match the model: missing={missing[:20]} "
                f"(+{max(0, len(missing) - 20)}) unexpected={unexpected[:20]} (+{max(0, len(unexpected) - 20)})"
            )
        own = self.state_dict()
        bad = [k for k in state if own[k].shape != state[k].shape]
        if bad:
            raise RuntimeError(
                f"{source}: shape mismatch for {[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in bad[:10]]}"
            )
        # Added rows equal to the built ones need no write (so a ZeRO-3 resume never touches the partitioned table).
        rows_differ = any(not torch.equal(own[k], v.to(own[k].device, own[k].dtype)) for k, v in state.items()
                          if k.startswith("added_rows."))
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v)
        if rows_differ:
            self.added_rows.write(self.llm)

    def param_groups(self, lr: float, lr_by_group: dict[str, float | None] | None = None,
                     weight_decay: float = 0.0) -> list[dict]:
        """Optimizer groups of the trainable parameters, one per module in ``PARAM_GROUPS`` and
        decay kind: ``{"params", "lr", "weight_decay", "name"}`` with names like ``"llm"`` and
        ``"video_adapter_nodecay"``. ``lr_by_group`` maps a module to its learning rate (missing or
        None: ``lr``); ``"llm_extra"`` (peft ``modules_to_save``, trained fully) falls back to ``"llm"``'s.
        Biases, norms and other 1-d parameters get no weight decay."""
        lr_by_group = dict(lr_by_group or {})
        unknown = sorted(set(lr_by_group) - set(PARAM_GROUPS) - {"llm_extra"})
        if unknown:
            raise ValueError(f"learning rates for unknown parameter groups {unknown}; groups are {list(PARAM_GROUPS)}")
        groups: dict[tuple[str, bool], list] = {}
        for name, p in self.named_parameters():
            if p.requires_grad:
                decay = p.ndim >= 2 and "norm" not in name
                group = param_group_of(name)
                if group == "llm" and "modules_to_save" in name:  # fully trained LLM modules: "llm_extra"
                    group = "llm_extra"
                groups.setdefault((group, decay), []).append(p)
        order = (*PARAM_GROUPS, "llm_extra")
        rate = {g: lr_by_group.get(g) or lr for g in PARAM_GROUPS}
        rate["llm_extra"] = lr_by_group.get("llm_extra") or rate["llm"]
        return [{"params": ps, "lr": rate[g], "weight_decay": weight_decay if decay else 0.0,
                 "name": g if decay else f"{g}_nodecay"}
                for (g, decay), ps in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), not kv[0][1]))]

    # ----------------------------------------------------------------- encoding
    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def encode_media(self, batch: dict) -> dict:
        """Frozen-encoder features. Uses precomputed ``video_feats``/``audio_feats`` when present."""
        out = {}
        if self.vision is not None:
            if "video_feats" in batch:
                out["video"] = batch["video_feats"].to(self.device)
            elif "frames" in batch:
                out["video"] = self.vision(batch["frames"].to(self.device))
        if self.audio is not None:
            if "audio_feats" in batch:
                out["audio"] = [None if f is None else f.to(self.device) for f in batch["audio_feats"]]
            else:
                waves = [w for w in batch["audio"] if w is not None]
                feats = iter(self.audio([w.to(self.device) for w in waves])) if waves else iter(())
                out["audio"] = [None if w is None else next(feats) for w in batch["audio"]]
        return out

    def modality_embeddings(self, batch: dict, feats: dict) -> dict[str, list[torch.Tensor]]:
        """Per sample, per modality, the [n_tokens, llm_dim] rows to splice in (empty when absent)."""
        n = num_samples(batch)
        rows: dict[str, list[torch.Tensor]] = {k: [None] * n for k in ("video", "audio", "fusion")}
        present = (
            batch["video_present"].to(self.device) if "video_present" in batch else torch.zeros(n, dtype=torch.bool)
        )
        if feats.get("video") is not None:
            tokens = self.video_adapter(feats["video"])
            for i in range(n):
                rows["video"][i] = tokens[i] if present[i] else tokens[i, :0]
        audio = feats.get("audio") or [None] * n
        idx = [i for i, f in enumerate(audio) if f is not None]
        if idx:
            tokens, counts = self.audio_adapter([audio[i] for i in idx])
            for j, i in enumerate(idx):
                rows["audio"][i] = tokens[j, : counts[j]]
        if self.fusion is not None and (feats.get("video") is not None or idx):
            rows["fusion"] = list(self._fusion_tokens(feats, present, audio, n))
        return rows

    def _fusion_tokens(self, feats, present, audio, n) -> torch.Tensor:
        dim_a = self.audio.out_dim
        waves = [a if a is not None else torch.zeros(1, dim_a, device=self.device) for a in audio]
        a, mask = pad_features(waves)
        mask &= torch.tensor([x is not None for x in audio], device=self.device).unsqueeze(1)
        v = feats.get("video")
        if v is None:
            v = torch.zeros(n, 1, 1, self.vision.out_dim, device=self.device)
        return self.fusion(v, present, a, mask)

    def embed(self, batch: dict, feats: dict) -> torch.Tensor:
        """Token embeddings with each placeholder run replaced by its modality tokens."""
        ids = batch["input_ids"].to(self.device)
        emb_layer = self.llm.get_input_embeddings()
        emb = emb_layer(ids)
        rows = self.modality_embeddings(batch, feats)
        if "sample_row" in batch:  # packed: a row's placeholders are its samples' runs, in order
            rows = pack_modality_rows(rows, batch["sample_row"], ids.shape[0])
        out = emb.clone()
        for key, tids in self.token_ids.items():
            wanted = torch.tensor(tids, device=ids.device)
            for i in range(ids.shape[0]):
                pos = torch.isin(ids[i], wanted).nonzero().squeeze(-1)
                r = rows[key][i]
                have = 0 if r is None else r.shape[0]
                if pos.numel() != have:
                    name = batch.get("names", ["?"] * ids.shape[0])[i] if "sample_row" not in batch else f"row {i}"
                    raise RuntimeError(f"sample {name!r}: {pos.numel()} {key} placeholders but {have} {key} tokens")
                if have:
                    out[i, pos] = r.to(out.dtype)
        return out

    # ----------------------------------------------------------------- train / generate
    def forward(self, batch: dict, completions: tuple[torch.Tensor, torch.Tensor] | None = None,
                temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross-entropy over target tokens and their count. With ``completions`` (the GRPO
        step, through DDP's or DeepSpeed's forward so their gradient hooks see it): the per-token
        log-probabilities of those completions instead (``completion_logprobs``)."""
        if completions is not None:
            return self.completion_logprobs(batch, *completions, temperature=temperature)
        hidden, labels, target = self._target_hidden(batch)
        if self.kernels == "liger":  # fused head + loss: the [tokens, vocab] logits never exist
            head = self._base().get_output_embeddings()
            return fused_linear_cross_entropy(hidden, head, labels), target.sum()
        loss_sum = F.cross_entropy(output_logits(self._base(), hidden).float(), labels, reduction="sum")
        return loss_sum, target.sum()

    def per_sample_loss(self, batch: dict) -> torch.Tensor:
        """Summed target cross-entropy of each sample (in ``batch["names"]`` order), packed or not."""
        hidden, labels, target = self._target_hidden(batch)
        losses = F.cross_entropy(output_logits(self._base(), hidden).float(), labels, reduction="none")
        if "segment" in batch:
            owner = batch["segment"].to(self.device)[:, 1:][target]
        else:
            owner = torch.arange(target.shape[0], device=self.device).unsqueeze(1).expand_as(target)[target]
        return torch.zeros(num_samples(batch), device=self.device).index_add_(0, owner, losses)

    def completion_logprobs(self, batch: dict, ids: torch.Tensor, mask: torch.Tensor,
                            temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities (at ``temperature``) of completion tokens ``ids`` [B*G, L] (``mask``: 1
        up to and including the stop token) after the B left-padded prompts of a generation batch,
        each prompt shared by G consecutive rows: the media and adapters run once per prompt and
        the prompt embeddings are repeated. Returns the flat log-probs of the masked tokens (row
        by row) and the [B*G, L] boolean mask. Position ids count real tokens only, as in generation."""
        feats = self.encode_media(batch)
        prompt = self.embed(batch, feats)
        group = ids.shape[0] // prompt.shape[0]
        ids, keep = ids.to(self.device), mask.to(self.device).bool()
        attn = torch.cat([batch["attention_mask"].to(self.device).repeat_interleave(group, 0), keep.long()], 1)
        embeds = torch.cat([prompt.repeat_interleave(group, 0), self.llm.get_input_embeddings()(ids)], 1)
        positions = (attn.cumsum(-1) - 1).clamp(min=0)
        hidden = self._base().get_decoder()(inputs_embeds=embeds, attention_mask=attn, position_ids=positions,
                                           use_cache=False).last_hidden_state
        # hidden[:, P-1+j] predicts completion token j; logits only where a token is kept
        h = hidden[:, prompt.shape[1] - 1 : -1][keep]
        logits = output_logits(self._base(), h).float() / temperature
        return torch.log_softmax(logits, -1).gather(1, ids[keep].unsqueeze(1)).squeeze(1), keep

    def _base(self):
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    def _target_hidden(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Last hidden states at the positions that predict a target token, those tokens, and the
        [rows, length-1] mask of them. Packed batches (``position_ids``) pass no attention mask:
        transformers then keeps attention inside each run of position ids (block-diagonal causal
        under SDPA/eager/flex, variable-length kernels under FlashAttention-2)."""
        labels = batch["labels"].to(self.device)
        target = labels[:, 1:] != IGNORE_INDEX
        self._check_targets(batch, target)
        embeds = self.embed(batch, self.encode_media(batch))
        if "position_ids" in batch:
            kwargs = {"position_ids": batch["position_ids"].to(self.device), "attention_mask": None}
        else:
            kwargs = {"attention_mask": batch["attention_mask"].to(self.device)}
        hidden = self._base().get_decoder()(inputs_embeds=embeds, use_cache=False, **kwargs).last_hidden_state
        return hidden[:, :-1][target], labels[:, 1:][target], target

    @staticmethod
    def _check_targets(batch: dict, target: torch.Tensor) -> None:
        if "segment" in batch:
            seg = batch["segment"][:, 1:].to(target.device)[target]
            per_sample = torch.bincount(seg, minlength=num_samples(batch))
        else:
            per_sample = target.sum(1)
        if (per_sample == 0).any():
            names = [batch["names"][i] for i in (per_sample == 0).nonzero().flatten().tolist()]
            raise RuntimeError(f"samples {names} have no target tokens (fully masked); refusing a silent zero loss")

    @torch.no_grad()
    def generate(self, batch: dict, max_new_tokens: int = 256, do_sample: bool = False, temperature: float = 1.0,
                 top_p: float = 1.0, num_beams: int = 1, top_k: int | None = None,
                 stop_strings: list[str] | None = None, repetition_penalty: float | None = None) -> list[str]:
        """Decoded answers. ``top_k`` / ``repetition_penalty`` None: the LLM's generation_config value;
        ``stop_strings`` end a sequence once its text ends with one (besides the stop ids)."""
        from affectgpt.data.prompts import clean_answer

        embeds = self.embed(batch, self.encode_media(batch))
        placeholders = sorted({i for ids in self.token_ids.values() for i in ids})
        kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, num_beams=num_beams,
                      eos_token_id=self.stop_ids, pad_token_id=self.tokenizer.pad_token_id,
                      suppress_tokens=placeholders)  # a placeholder is never an answer
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p)
            if top_k is not None:
                kwargs["top_k"] = int(top_k)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if repetition_penalty is not None:
            kwargs["repetition_penalty"] = float(repetition_penalty)
        if stop_strings:
            kwargs.update(stop_strings=list(stop_strings), tokenizer=self.tokenizer)
        out = self.llm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"].to(self.device), **kwargs)
        return [clean_answer(t, self.cfg.prompt) for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def num_samples(batch: dict) -> int:
    """Samples in a batch: one per row, or ``len(sample_row)`` when packed."""
    return len(batch["sample_row"]) if "sample_row" in batch else batch["input_ids"].shape[0]


def pack_modality_rows(rows: dict[str, list], sample_row: torch.Tensor, n_rows: int) -> dict[str, list]:
    """Per-sample modality tokens → per packed row, the row's samples' tokens concatenated in order."""
    out: dict[str, list] = {}
    for key, per_sample in rows.items():
        grouped: list[list[torch.Tensor]] = [[] for _ in range(n_rows)]
        for j, r in enumerate(sample_row.tolist()):
            if per_sample[j] is not None and per_sample[j].shape[0]:
                grouped[r].append(per_sample[j])
        out[key] = [torch.cat(g) if g else None for g in grouped]
    return out


def audio_seconds_to_tokens(plan: TokenPlan, seconds: float) -> int:
    return plan.audio_tokens(int(round(seconds * SAMPLE_RATE)))
