"""AffectGPT: frozen CLIP + Whisper → trainable adapters → LLM (frozen base + LoRA).

``forward(batch)`` returns an ``AffectGPTOutput``: the summed target-token loss and the number of
target tokens (the trainer normalises across accumulated micro-batches); logits are computed only
at target positions, which matters with a 152k vocabulary. ``generate(batch)`` returns decoded texts.

Single-purpose parts beside the class: ``parts`` (what each trainable part trains, saves and ships),
``splice`` (modality rows into the token embeddings), the optimizer groups in ``affectgpt.recipe.groups``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from affectgpt.core.model_config import ModelConfig
from affectgpt.core.plan import IGNORE_INDEX, OFFICIAL_PLACEHOLDERS, PROMPT_STYLES, TokenPlan
from affectgpt.data.prompts import clean_answer
from affectgpt.model import artifact, media, parts
from affectgpt.model.adapters import AudioAdapter, PreFusion, VideoAdapter
from affectgpt.model.encoders import make_audio_encoder, make_vision_encoder
from affectgpt.model.kernels import apply_kernels, fused_linear_cross_entropy
from affectgpt.model.llm import (
    add_token_rows,
    build_base_llm,
    output_logits,
    random_tokenizer_source,
    wrap_lora,
)
from affectgpt.model.splice import num_samples, pack_modality_rows, splice
from affectgpt.model.tokenizer import load_tokenizer, modality_token_ids, official_token_ids, stop_token_ids


@dataclass
class AffectGPTOutput(ModelOutput):
    """What ``AffectGPT.forward`` returns. ``forward(batch)``: ``loss_sum``, the summed
    cross-entropy over target tokens, and ``target_tokens``, their count (the trainer normalises
    across accumulated micro-batches). ``per_sample=True`` adds ``per_sample_loss``, each sample's
    summed target cross-entropy (in ``batch["names"]`` order, packed or not). ``completions=(ids,
    mask)`` (the GRPO step): ``logprobs``, the flat log-probabilities of the kept completion tokens,
    and ``completion_mask``, the [B*G, L] boolean mask of them. A transformers ``ModelOutput``: Accelerate's
    mixed-precision wrapper converts its half-precision tensors to float32, as it would a tuple's."""

    loss_sum: torch.Tensor | None = None
    target_tokens: torch.Tensor | None = None
    per_sample_loss: torch.Tensor | None = None
    logprobs: torch.Tensor | None = None
    completion_mask: torch.Tensor | None = None


class AffectGPT(nn.Module):
    """weights: "pretrained" loads the encoders and the LLM from their checkpoints; "random" builds
    the same shapes from the offline architectures (any device, ``meta`` included). Adapters and
    LoRA are always freshly initialised (training checkpoints hold them). What each trainable part
    trains, saves and ships: :mod:`affectgpt.model.parts`."""

    def __init__(self, cfg: ModelConfig, device: str | torch.device = "cpu", weights: str | None = None):
        super().__init__()
        weights = weights or cfg.init
        if weights not in ("pretrained", "random"):
            raise ValueError(f"model.init / weights must be 'pretrained' or 'random', got {weights!r}")
        if cfg.prompt not in PROMPT_STYLES:
            raise ValueError(f"model.prompt must be one of {PROMPT_STYLES}, got {cfg.prompt!r}")
        self.cfg, self.weights = cfg, weights
        official = cfg.prompt == "official"
        tok_source = (cfg.llm.tokenizer or cfg.llm.name_or_path) if weights == "pretrained" else \
            random_tokenizer_source(cfg.llm)
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
        dim = base.config.hidden_size  # the LLM's: every modality row has this width
        v = self.vision = make_vision_encoder(cfg.vision, device, weights) if cfg.vision else None
        a = self.audio = make_audio_encoder(cfg.audio, device, weights) if cfg.audio else None
        self.video_adapter = VideoAdapter(cfg.video_adapter, v.out_dim, v.tokens_per_frame, dim) if v else None
        self.audio_adapter = AudioAdapter(cfg.audio_adapter, a.out_dim, dim) if a else None
        if cfg.fusion and not (v and a):
            raise ValueError("model.fusion needs both a vision and an audio encoder")
        self.fusion = PreFusion(v.out_dim, a.out_dim, dim, cfg.fusion_dim, cfg.fusion_weight) if cfg.fusion else None
        switches = ((self.video_adapter, cfg.video_adapter.trainable),
                    (self.audio_adapter, cfg.audio_adapter.trainable), (self.fusion, cfg.fusion_trainable))
        for module in (m for m, trainable in switches if m is not None and not trainable):
            module.requires_grad_(False)
        self.to(device)

    @classmethod
    def from_pretrained(cls, path, **kwargs) -> AffectGPT:
        """A training checkpoint or an export, built and loaded strictly, in eval mode (the Hugging Face habit).
        ``kwargs``: ``artifact.load_model``'s (device, dtype, merge_lora, trust_remote_code, verify_hashes);
        ``artifact.load_model(AffectGPT, path)`` also gives the artifact's generation defaults and system prompt."""
        return artifact.load_model(cls, path, **kwargs).model

    def token_plan(self) -> TokenPlan:
        return media.token_plan(self)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trainable state (``parts.trainable_state``): trained parameters, fixed statistics, added rows."""
        return parts.trainable_state(self)

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Strict: the keys must equal ``trainable_state_dict()``'s; differences are listed with ``source``."""
        parts.load_trainable_state(self, state, source)

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def encode_media(self, batch: dict) -> dict:
        """Frozen-encoder features (``media.encode_media``)."""
        return media.encode_media(self, batch)

    def modality_embeddings(self, batch: dict, feats: dict) -> dict[str, list[torch.Tensor]]:
        """Per sample, per modality, the rows to splice in (``media.modality_rows``)."""
        return media.modality_rows(self, batch, feats)

    def embed(self, batch: dict, feats: dict) -> torch.Tensor:
        """Token embeddings with each placeholder run replaced by its modality tokens (``splice.splice``)."""
        ids = batch["input_ids"].to(self.device)
        rows = self.modality_embeddings(batch, feats)
        if "sample_row" in batch:  # packed: a row's placeholders are its samples' runs, in order
            rows = pack_modality_rows(rows, batch["sample_row"], ids.shape[0])
        names = [f"row {i}" for i in range(ids.shape[0])] if "sample_row" in batch else \
            batch.get("names", ["?"] * ids.shape[0])
        return splice(self.llm.get_input_embeddings()(ids), ids, rows, self.token_ids, names)

    def forward(self, batch: dict, completions: tuple[torch.Tensor, torch.Tensor] | None = None,
                temperature: float = 1.0, per_sample: bool = False) -> AffectGPTOutput:
        """The summed target cross-entropy and the target count (``AffectGPTOutput``); ``per_sample``
        adds each sample's sum. With ``completions`` (the GRPO step, through DDP's or DeepSpeed's
        forward so their gradient hooks see it): the completions' log-probabilities instead."""
        if completions is not None:
            return self.completion_logprobs(batch, *completions, temperature=temperature)
        hidden, labels, target = self._target_hidden(batch)
        if per_sample:
            losses = F.cross_entropy(output_logits(self._base(), hidden).float(), labels, reduction="none")
            per = torch.zeros(num_samples(batch), device=self.device).index_add_(0, target_owner(batch, target), losses)
            return AffectGPTOutput(loss_sum=losses.sum(), target_tokens=target.sum(), per_sample_loss=per)
        if self.kernels == "liger":  # fused head + loss: the [tokens, vocab] logits never exist
            loss_sum = fused_linear_cross_entropy(hidden, self._base().get_output_embeddings(), labels)
        else:
            loss_sum = F.cross_entropy(output_logits(self._base(), hidden).float(), labels, reduction="sum")
        return AffectGPTOutput(loss_sum=loss_sum, target_tokens=target.sum())

    def completion_logprobs(self, batch: dict, ids: torch.Tensor, mask: torch.Tensor,
                            temperature: float = 1.0) -> AffectGPTOutput:
        """Log-probabilities of completions ``ids`` [B*G, L] (``mask``: 1 up to the stop token) after B left-padded
        prompts, G rows each: media and adapters run once per prompt; positions count real tokens only."""
        prompt = self.embed(batch, self.encode_media(batch))
        group = ids.shape[0] // prompt.shape[0]
        ids, keep = ids.to(self.device), mask.to(self.device).bool()
        attn = torch.cat([batch["attention_mask"].to(self.device).repeat_interleave(group, 0), keep.long()], 1)
        embeds = torch.cat([prompt.repeat_interleave(group, 0), self.llm.get_input_embeddings()(ids)], 1)
        hidden = self._base().get_decoder()(inputs_embeds=embeds, attention_mask=attn, use_cache=False,
                                           position_ids=(attn.cumsum(-1) - 1).clamp(min=0)).last_hidden_state
        # hidden[:, P-1+j] predicts completion token j; logits only where a token is kept
        logits = output_logits(self._base(), hidden[:, prompt.shape[1] - 1 : -1][keep]).float() / temperature
        logprobs = torch.log_softmax(logits, -1).gather(1, ids[keep].unsqueeze(1)).squeeze(1)
        return AffectGPTOutput(logprobs=logprobs, completion_mask=keep)

    def _base(self):
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    def _target_hidden(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Last hidden states at the positions that predict a target token, those tokens, and the
        [rows, length-1] mask of them."""
        labels = batch["labels"].to(self.device)
        target = labels[:, 1:] != IGNORE_INDEX
        check_targets(batch, target)
        embeds = self.embed(batch, self.encode_media(batch))
        # Packed (position_ids): no attention mask, so transformers keeps attention inside each run of position
        # ids (block-diagonal causal under SDPA/eager/flex, variable-length kernels under FlashAttention-2).
        kwargs = {"position_ids": batch["position_ids"].to(self.device), "attention_mask": None} \
            if "position_ids" in batch else {"attention_mask": batch["attention_mask"].to(self.device)}
        hidden = self._base().get_decoder()(inputs_embeds=embeds, use_cache=False, **kwargs).last_hidden_state
        return hidden[:, :-1][target], labels[:, 1:][target], target

    @torch.no_grad()
    def generate(self, batch: dict, max_new_tokens: int = 256, do_sample: bool = False, temperature: float = 1.0,
                 top_p: float = 1.0, num_beams: int = 1, top_k: int | None = None,
                 stop_strings: list[str] | None = None, repetition_penalty: float | None = None) -> list[str]:
        """Decoded answers. ``top_k`` / ``repetition_penalty`` None: the LLM's generation_config value;
        ``stop_strings`` end a sequence once its text ends with one (besides the stop ids)."""
        kwargs = generation_kwargs(self, max_new_tokens, do_sample, temperature, top_p, num_beams, top_k,
                                   stop_strings, repetition_penalty)
        embeds = self.embed(batch, self.encode_media(batch))
        out = self.llm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"].to(self.device), **kwargs)
        return [clean_answer(t, self.cfg.prompt) for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def generation_kwargs(model: AffectGPT, max_new_tokens: int, do_sample: bool, temperature: float, top_p: float,
                      num_beams: int, top_k: int | None, stop_strings: list[str] | None,
                      repetition_penalty: float | None) -> dict:
    """``llm.generate``'s keyword arguments for ``AffectGPT.generate``: its stop ids, no placeholder
    ever generated, sampling settings only when sampling."""
    placeholders = sorted({i for ids in model.token_ids.values() for i in ids})
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, num_beams=num_beams,
                  eos_token_id=model.stop_ids, pad_token_id=model.tokenizer.pad_token_id,
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
        kwargs.update(stop_strings=list(stop_strings), tokenizer=model.tokenizer)
    return kwargs


def target_owner(batch: dict, target: torch.Tensor) -> torch.Tensor:
    """The sample (index in ``batch["names"]``) of each target token, packed or not."""
    if "segment" in batch:
        return batch["segment"].to(target.device)[:, 1:][target]
    return torch.arange(target.shape[0], device=target.device).unsqueeze(1).expand_as(target)[target]


def check_targets(batch: dict, target: torch.Tensor) -> None:
    """RuntimeError naming the samples with no target token (a fully masked sample would add a silent 0)."""
    if "segment" in batch:
        seg = batch["segment"][:, 1:].to(target.device)[target]
        per_sample = torch.bincount(seg, minlength=num_samples(batch))
    else:
        per_sample = target.sum(1)
    if (per_sample == 0).any():
        names = [batch["names"][i] for i in (per_sample == 0).nonzero().flatten().tolist()]
        raise RuntimeError(f"samples {names} have no target tokens (fully masked); refusing a silent zero loss")
