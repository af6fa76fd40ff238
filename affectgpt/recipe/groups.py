"""The optimizer's parameter groups: one per trained part of the model and decay kind.

The parts and their order come from :mod:`affectgpt.model.parts` (the same walk that decides
what a checkpoint saves); this module only adds what an optimizer needs: learning rates, weight
decay, and the LLM's fully trained modules (peft ``modules_to_save``) as a group of their own.
"""

from __future__ import annotations

from affectgpt.model.parts import TRAINED, parts

EXTRA = "llm_extra"  # peft modules_to_save: trained fully, not through LoRA


def optimizer_groups(model, lr: float, lr_by_group: dict[str, float | None] | None = None,
                     weight_decay: float = 0.0) -> list[dict]:
    """``{"params", "lr", "weight_decay", "name"}`` per trained part and decay kind, with names like
    ``"llm"`` and ``"video_adapter_nodecay"``. ``lr_by_group`` maps a part to its learning rate
    (missing or None: ``lr``); ``"llm_extra"`` falls back to ``"llm"``'s. Biases, norms and other
    1-d parameters get no weight decay. A trainable parameter outside every part is an error."""
    lr_by_group = dict(lr_by_group or {})
    unknown = sorted(set(lr_by_group) - set(TRAINED) - {EXTRA})
    if unknown:
        raise ValueError(f"learning rates for unknown parameter groups {unknown}; groups are {list(TRAINED)}")
    groups: dict[tuple[str, bool], list] = {}
    for part, module in parts(model):
        for name, p in module.named_parameters(prefix=part.name):
            if p.requires_grad and part.trained:
                group = EXTRA if part.name == "llm" and "modules_to_save" in name else part.name
                groups.setdefault((group, p.ndim >= 2 and "norm" not in name), []).append(p)
    stray = [n for n, p in model.named_parameters() if p.requires_grad and n.split(".", 1)[0] not in TRAINED]
    if stray:
        raise ValueError(f"parameter {stray[0]!r} belongs to none of the trainable groups {list(TRAINED)}")
    order = (*TRAINED, EXTRA)
    rate = {g: lr_by_group.get(g) or lr for g in TRAINED}
    rate[EXTRA] = lr_by_group.get(EXTRA) or rate["llm"]
    return [{"params": ps, "lr": rate[g], "weight_decay": weight_decay if decay else 0.0,
             "name": g if decay else f"{g}_nodecay"}
            for (g, decay), ps in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), not kv[0][1]))]
