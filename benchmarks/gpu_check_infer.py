"""Inference rows of the GPU check: single-clip latency, fixed-shape decoding, batched manifest decoding."""

from __future__ import annotations

import time

import torch
from gpu_check_rows import Result, Row
from gpu_check_setup import Ctx, make_batch, make_items, reset_peak, set_grad_ckpt, sync


@torch.no_grad()
def infer_row(row: Row, ctx: Ctx, res: Result) -> None:
    """One clip: encode (frozen encoders + adapters + splice), prefill (LLM forward over the
    prompt), generation of exactly ``new_tokens`` greedy tokens; medians over repeats."""
    model = ctx.model(row.model)
    a = ctx.args
    model.eval()
    set_grad_ckpt(model, False)
    if row.merged and hasattr(model.llm, "merge_and_unload"):
        model.llm = model.llm.merge_and_unload()
    batch = make_batch(
        model, make_items(model, 1, 0, a.audio_seconds, seed=2, train=False), 4096, ctx.device, train=False
    )
    mask = batch["attention_mask"]
    tok = model.tokenizer
    gen_kwargs = dict(
        max_new_tokens=a.new_tokens,
        min_new_tokens=a.new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        temperature=None,
        top_p=None,
        top_k=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )

    def timed(fn):
        sync(ctx.device)
        t0 = time.perf_counter()
        out = fn()
        sync(ctx.device)
        return time.perf_counter() - t0, out

    def end_to_end():
        with ctx.amp():
            embeds = model.embed(batch, model.encode_media(batch))
            ids = model.llm.generate(inputs_embeds=embeds, attention_mask=mask, **gen_kwargs)
        return ids, tok.batch_decode(ids, skip_special_tokens=True)

    one_token = {**gen_kwargs, "max_new_tokens": 1, "min_new_tokens": 1}
    reset_peak(ctx.device)
    runs = []
    for i in range(1 + a.infer_repeats):  # the first is warmup
        with ctx.amp():
            enc_s, embeds = timed(lambda: model.embed(batch, model.encode_media(batch)))
            # B023: each lambda is called at once by timed(), inside this iteration
            pre_s, _ = timed(
                lambda: model.llm(inputs_embeds=embeds, attention_mask=mask, use_cache=True, logits_to_keep=1)  # noqa: B023
            )
            gen1_s, _ = timed(
                lambda: model.llm.generate(inputs_embeds=embeds, attention_mask=mask, **one_token)  # noqa: B023
            )
            gen_s, ids = timed(
                lambda: model.llm.generate(inputs_embeds=embeds, attention_mask=mask, **gen_kwargs)  # noqa: B023
            )
        e2e_s, (ids2, _texts) = timed(end_to_end)
        if ids.shape[-1] != a.new_tokens or ids2.shape[-1] != a.new_tokens:
            raise RuntimeError(f"generate returned {ids.shape[-1]} tokens, expected {a.new_tokens}")
        if i:
            runs.append((enc_s, pre_s, gen1_s, gen_s, e2e_s))
    enc_s, pre_s, gen1_s, gen_s, e2e_s = (sorted(col)[len(col) // 2] for col in zip(*runs, strict=True))
    # Decode rate: the tokens after the first, over generate(N) minus generate(1) (prefill + first token).
    decode_tps = (a.new_tokens - 1) / (gen_s - gen1_s) if gen_s > gen1_s else None
    res.batch, res.seq = 1, int(mask.shape[1])
    res.step_s, res.samples_s, res.tokens_s = e2e_s, 1 / e2e_s, decode_tps
    res.extra.update(
        encode_ms=enc_s * 1e3,
        prefill_ms=pre_s * 1e3,
        prompt_tokens=int(mask.sum()),
        generate_1_s=gen1_s,
        generate_s=gen_s,
        new_tokens=a.new_tokens,
        decode_tokens_s=decode_tps,
        end_to_end_s=e2e_s,
    )


def exact_greedy(tok, n: int) -> dict:
    """``generate`` kwargs: greedy, exactly ``n`` new tokens (EOS banned until then)."""
    return dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1, temperature=None, top_p=None,
                top_k=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)


def merged_model(row: Row, ctx: Ctx):
    """The role's model in eval mode, LoRA merged when the row says so (irreversible)."""
    model = ctx.model(row.model)
    model.eval()
    set_grad_ckpt(model, False)
    if row.merged and hasattr(model.llm, "merge_and_unload"):
        model.llm = model.llm.merge_and_unload()
    return model


@torch.no_grad()
def decode_row(row: Row, ctx: Ctx, res: Result) -> None:
    """One clip, ``new_tokens`` greedy tokens (EOS banned) through ``affectgpt.runtime.decoding`` in
    ``row.decode`` mode and through transformers' ``generate``; tokens/s after the first token
    (the prefill excluded), medians over repeats after a warm-up call (which compiles or captures;
    its time is reported). ``identical``: the two paths' token ids are equal on every repeat."""
    from affectgpt.runtime.decoding import greedy_static

    model = merged_model(row, ctx)
    a = ctx.args
    items = make_items(model, 1, 0, a.audio_seconds, seed=2, train=False)
    batch = make_batch(model, items, 4096, ctx.device, train=False)
    tok = model.tokenizer
    with ctx.amp():
        embeds = model.embed(batch, model.encode_media(batch))
    gen_kwargs = exact_greedy(tok, a.new_tokens)
    reset_peak(ctx.device)
    t0 = time.perf_counter()
    with ctx.amp():
        greedy_static(model, embeds, a.new_tokens, row.decode, ignore_eos=True)  # warm-up: compile / capture
    warm_s = time.perf_counter() - t0
    rates, prefill, identical = [], [], True
    for _ in range(a.infer_repeats):
        with ctx.amp():
            ids, timing = greedy_static(model, embeds, a.new_tokens, row.decode, ignore_eos=True)
            plain = model.llm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], **gen_kwargs)
        identical &= ids == plain[0].tolist()
        rates.append(timing["tokens_per_s"])
        prefill.append(timing["prefill_s"])
    rate, pre = sorted(rates)[len(rates) // 2], sorted(prefill)[len(prefill) // 2]
    res.batch, res.seq = 1, int(batch["attention_mask"].shape[1])
    res.step_s = pre + (a.new_tokens - 1) / rate
    res.samples_s, res.tokens_s = 1 / res.step_s, rate
    res.extra.update(decode=row.decode, new_tokens=a.new_tokens, prefill_ms=pre * 1e3, warmup_s=warm_s,
                     identical=bool(identical), decode_tokens_s=rate)


@torch.no_grad()
def batch_decode_row(row: Row, ctx: Ctx, res: Result) -> None:
    """Manifest decoding as ``run_manifest`` does it (left-padded batch, frozen encoders, splice,
    transformers' ``generate``), ``new_tokens`` tokens per clip (EOS banned): clips/s end to end
    and generated tokens/s over the batch; medians over repeats after one warm-up."""
    model = merged_model(row, ctx)
    a = ctx.args
    batch = make_batch(model, make_items(model, row.batch, 0, a.audio_seconds, seed=3, train=False), 4096, ctx.device,
                       train=False)
    gen_kwargs = exact_greedy(model.tokenizer, a.new_tokens)

    def run():
        sync(ctx.device)
        t0 = time.perf_counter()
        with ctx.amp():
            embeds = model.embed(batch, model.encode_media(batch))
            ids = model.llm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], **gen_kwargs)
        sync(ctx.device)
        if ids.shape != (row.batch, a.new_tokens):
            raise RuntimeError(f"generate returned {tuple(ids.shape)}, expected {(row.batch, a.new_tokens)}")
        return time.perf_counter() - t0

    reset_peak(ctx.device)
    run()
    secs = sorted(run() for _ in range(a.infer_repeats))[a.infer_repeats // 2]
    res.batch, res.seq = row.batch, int(batch["attention_mask"].shape[1])
    res.step_s, res.samples_s, res.tokens_s = secs, row.batch / secs, row.batch * a.new_tokens / secs
    res.extra.update(new_tokens=a.new_tokens, clips_s=row.batch / secs)
