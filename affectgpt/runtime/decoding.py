"""Fast greedy decoding of one clip: a static KV cache and a replayed one-token step.

``generate(..., decode="plain")`` is transformers' ``generate``: a growing cache and, per token,
some hundred kernel launches from Python; for a merged 7B on an H200 that is ~15 ms per token
while reading the weights once takes ~3.2 ms. The other modes keep every shape fixed, so the
decode step can be replayed:

- ``static``: a ``StaticCache`` sized prompt + max_new_tokens, eager steps (the reference);
- ``graph``: the step captured once as a CUDA graph and replayed per token (no compiler);
- ``compile``: the step through ``torch.compile(mode="reduce-overhead")`` (Inductor kernels
  in CUDA graphs; the first call compiles, later processes reuse Inductor's on-disk cache).

Greedy tokens equal ``plain``'s: the same prefill, then argmax of the last logits per step,
stopping after the tokenizer's EOS (``ignore_eos`` bans it, as ``min_new_tokens`` does).
"""

from __future__ import annotations

import inspect
import time

import torch
from transformers import StaticCache

MODES = ("plain", "static", "graph", "compile")


def check_mode(mode: str, device: torch.device) -> str:
    if mode not in MODES:
        raise ValueError(f"decode must be one of {list(MODES)}, got {mode!r}")
    if mode == "graph" and device.type != "cuda":
        raise ValueError(f"decode=graph replays a CUDA graph and needs a CUDA device; the model is on {device}")
    return mode


def fast_path_reason(batch: dict, gen: dict) -> str | None:
    """Why the fixed-shape path cannot serve this request (None: it can)."""
    if len(batch["input_ids"]) != 1:
        return f"it decodes one clip at a time, the batch has {len(batch['input_ids'])}"
    if gen.get("do_sample") or int(gen.get("num_beams", 1)) != 1:
        return "it decodes greedily (do_sample=false, num_beams=1)"
    if gen.get("stop_strings"):
        return "it stops at end-of-sequence ids only, not at stop strings"
    return None


class _Calls:
    """Keyword names of the causal LM's forward across transformers versions (cache vs
    past_key_values; cache_position before the cache counted its own length)."""

    def __init__(self, llm):
        params = inspect.signature(llm.forward).parameters
        self.cache_key = "cache" if "cache" in params else "past_key_values"
        self.positions = "cache_position" in params

    def kwargs(self, cache, positions: torch.Tensor) -> dict:
        out = {self.cache_key: cache, "use_cache": True, "position_ids": positions.unsqueeze(0)}
        if self.positions:
            out["cache_position"] = positions
        return out


def synced_now(device: torch.device) -> float:
    """``time.perf_counter()`` after the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@torch.no_grad()
def greedy_static(model, embeds: torch.Tensor, max_new_tokens: int, mode: str = "static",
                  ignore_eos: bool = False) -> tuple[list[int], dict]:
    """Greedy token ids for one prompt given as input embeddings [1, P, h], and a timing
    summary (``prefill_s``, ``tokens``, ``generate_s``, ``tokens_per_s`` after the first)."""
    check_mode(mode, embeds.device)
    if embeds.shape[0] != 1:
        raise ValueError(f"greedy_static decodes one prompt, got a batch of {embeds.shape[0]}")
    llm = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    device, prompt = embeds.device, embeds.shape[1]
    eos = model.tokenizer.eos_token_id
    calls = _Calls(llm)
    cache = StaticCache(config=llm.config, max_cache_len=prompt + max_new_tokens)
    banned = -torch.inf if ignore_eos else None

    def pick(logits: torch.Tensor) -> torch.Tensor:
        logits = logits[:, -1].float()
        if banned is not None:
            logits[:, eos] = banned
        return logits.argmax(-1, keepdim=True)  # [1, 1]

    t0 = synced_now(device)
    out = llm(inputs_embeds=embeds, logits_to_keep=1, **calls.kwargs(cache, torch.arange(prompt, device=device)))
    token = pick(out.logits)
    tokens = [int(token)]
    t_first = synced_now(device)
    if max_new_tokens > 1 and not (tokens[-1] == eos and not ignore_eos):
        step = _stepper(llm, calls, cache, pick, token, prompt, mode)
        for i in range(1, max_new_tokens):
            token = step(prompt + i - 1)
            tokens.append(int(token))  # one sync per token: the stop test needs the value
            if tokens[-1] == eos and not ignore_eos:
                break
    t_end = synced_now(device)
    rest = t_end - t_first
    timing = {"prefill_s": t_first - t0, "tokens": len(tokens), "generate_s": t_end - t0,
              "tokens_per_s": (len(tokens) - 1) / rest if len(tokens) > 1 and rest > 0 else 0.0}
    return tokens, timing


def _stepper(llm, calls: _Calls, cache, pick, first: torch.Tensor, prompt: int, mode: str):
    """``step(position) -> next token [1, 1]`` feeding the previous token; fixed shapes and
    tensors throughout, so a CUDA graph or a compiled graph can replay it."""
    device = first.device
    token = first.clone()  # the step's input buffer: the next token is written into it
    position = torch.full((1,), prompt, dtype=torch.long, device=device)

    def eager() -> torch.Tensor:
        out = llm(input_ids=token, **calls.kwargs(cache, position))
        return pick(out.logits)

    if mode == "static":
        def step(pos: int) -> torch.Tensor:
            position.fill_(pos)
            token.copy_(eager())
            return token
        return step

    if mode == "compile":
        compiled = torch.compile(eager, mode="reduce-overhead", fullgraph=False, dynamic=False)

        def step(pos: int) -> torch.Tensor:
            position.fill_(pos)
            if device.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()
            token.copy_(compiled())
            return token
        return step

    # graph: the first step runs eagerly on a side stream (allocator warm-up), the second is
    # captured; the cache advances by one token per replay exactly as in eager steps.
    position.fill_(prompt)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        token.copy_(eager())
    torch.cuda.current_stream(device).wait_stream(side)
    state = {"done": 1, "graph": torch.cuda.CUDAGraph(), "out": None}

    def step(pos: int) -> torch.Tensor:
        if pos == prompt:  # computed during warm-up
            return token
        position.fill_(pos)
        if state["out"] is None:
            with torch.cuda.graph(state["graph"]):
                state["out"] = eager()
            # Capture records without running: replay once for this position.
        state["graph"].replay()
        token.copy_(state["out"])
        return token
    return step


def generate(model, batch: dict, gen: dict, mode: str, ignore_eos: bool = False) -> tuple[list[str], dict]:
    """Texts for a collated one-clip batch through the fixed-shape path (``mode`` != plain)."""
    why = fast_path_reason(batch, gen)
    if why:
        raise ValueError(f"decode={mode}: {why}")
    if not bool(batch["attention_mask"].all()):
        raise ValueError(f"decode={mode}: the prompt has padding; one clip is never padded")
    embeds = model.embed(batch, model.encode_media(batch))
    ids, timing = greedy_static(model, embeds, int(gen.get("max_new_tokens", 256)), mode, ignore_eos)
    return [model.tokenizer.decode(ids, skip_special_tokens=True).strip()], timing
