"""Padding-free packing (data.packing=true): the layout, per-sample losses and gradients equal to
the padded batch's (float32, 1e-5), and the training recipe trained packed (stopped and resumed)
giving the unpacked run's losses."""

from __future__ import annotations

import pytest
import torch

from helpers import (
    REFERENCE_STEPS,
    build,
    cache_arg,
    losses,
    make_items,
    max_weight_diff,
    reference_run,
    run,
    tiny_cfg,
    train_cmd,
    weights,
    write_text_manifest,
)


def test_pack_rows_is_first_fit_in_data_order():
    from affectgpt.data.collate import pack_rows

    assert pack_rows([5, 4, 3, 2, 6], 8) == [[0, 2], [1, 3], [4]]  # 3 fills row 0, 2 goes to row 1
    assert pack_rows([8, 1, 7], 8) == [[0], [1, 2]]
    assert pack_rows([3, 3, 3], 8) == pack_rows([3, 3, 3], 8) == [[0, 1], [2]]
    with pytest.raises(ValueError, match="sample 1 has 9 tokens, more than a packed row of 8"):
        pack_rows([2, 9], 8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("packing-data")
    write_text_manifest(root)
    model = build(tiny_cfg(root))
    model.eval()  # no dropout: both layouts see the same function
    items = make_items(with_audio=(True, False, True, True), with_video=(True, True, False, True),
                       seconds=(1.3, 0, 2.0, 1.0))
    return model, items


def collate(model, items, **kw):
    from affectgpt.data.collate import Collator

    return Collator(model.tokenizer, model.token_plan(), **kw)(items)


def packed_pair(model, items):
    padded = collate(model, items, max_length=4096)
    lengths = padded["attention_mask"].sum(1).tolist()
    # Two samples per row, and a row with a padding tail.
    capacity = sorted(lengths)[-1] + sorted(lengths)[0] + 3
    return padded, collate(model, items, max_length=capacity, packing=True), lengths, capacity


def test_packed_layout_holds_each_sample_unchanged(tiny):
    model, items = tiny
    padded, packed, lengths, capacity = packed_pair(model, items)
    assert packed["names"] == padded["names"]
    assert packed["input_ids"].shape[0] == 2 and packed["input_ids"].shape[1] <= capacity
    assert packed["sample_row"].tolist() == [0, 0, 1, 1]
    for j, n in enumerate(lengths):
        where = packed["segment"] == j
        row = int(packed["sample_row"][j])
        assert int(where.sum()) == int(where[row].sum()) == n  # all of it in its own row
        assert torch.equal(packed["input_ids"][where], padded["input_ids"][j, :n])
        assert torch.equal(packed["labels"][where], padded["labels"][j, :n])
        assert torch.equal(packed["position_ids"][where], torch.arange(n))
    tail = packed["segment"] == -1  # the padding of the shorter row: a segment of its own, no labels
    assert int(tail.sum()) == packed["input_ids"].numel() - sum(lengths) > 0
    assert (packed["labels"][tail] == -100).all() and (packed["attention_mask"][tail] == 0).all()
    assert packed["position_ids"][tail].tolist() == list(range(int(tail.sum())))
    # Loss normalisation counts the same target tokens.
    assert int((packed["labels"][:, 1:] != -100).sum()) == int((padded["labels"][:, 1:] != -100).sum())


def test_packed_batch_gives_the_same_per_sample_losses_and_gradients(tiny):
    model, items = tiny
    padded, packed, _, _ = packed_pair(model, items)

    def losses_and_grads(batch):
        model.zero_grad(set_to_none=True)
        per_sample = model(batch, per_sample=True).per_sample_loss
        out = model(batch)
        loss_sum, n = out.loss_sum, out.target_tokens
        (loss_sum / n).backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        return per_sample.detach(), loss_sum.detach(), grads

    l_pad, s_pad, g_pad = losses_and_grads(padded)
    l_pack, s_pack, g_pack = losses_and_grads(packed)
    assert l_pad.shape == (4,) and bool((l_pad > 1).all())
    assert torch.allclose(l_pack, l_pad, rtol=1e-5, atol=1e-5), (l_pack, l_pad)
    assert torch.allclose(s_pack, l_pad.sum(), rtol=1e-5) and torch.allclose(s_pad, l_pad.sum(), rtol=1e-5)
    assert set(g_pack) == set(g_pad) and len(g_pad) > 100  # adapters and every LoRA matrix
    for k in g_pad:
        assert torch.allclose(g_pack[k], g_pad[k], rtol=1e-5, atol=1e-5), (k, float((g_pack[k] - g_pad[k]).abs().max()))


def test_packing_is_for_training_batches_only(tiny):
    model, _ = tiny
    from affectgpt.data.collate import Collator

    with pytest.raises(ValueError, match="training batches only"):
        Collator(model.tokenizer, model.token_plan(), train=False, packing=True)


# ------------------------------------------------------------------ through the recipe
@pytest.mark.integration
def test_recipe_trains_packed_with_the_unpacked_losses_and_resumes_exactly(tmp_path_factory, tmp_path, data):
    """data.packing=true, stopped at step 4 and resumed to 8: the losses and weights of the
    uninterrupted unpacked reference run (same data order, same samples per step)."""
    reference = reference_run(tmp_path_factory, data)
    out = tmp_path / "packed"
    common = [*REFERENCE_STEPS, cache_arg(data), "data.packing=true"]
    r = run(train_cmd(out, data, *common, "trainer.stop_at_step=4"))
    assert r.returncode == 0, r.stderr[-3000:]
    r = run(train_cmd(out, data, *common, "trainer.resume=auto"))
    assert r.returncode == 0, r.stderr[-3000:]
    ref, got = losses(reference), losses(out)
    assert len(got) == len(ref) == 8
    assert got == pytest.approx(ref, rel=1e-5), (got, ref)
    assert max_weight_diff(weights(out), weights(reference)) < 1e-4
