"""Rewards of the GRPO stage: pure functions of (answer text, gold emotions), torch-free.

Every term is registered in ``TERMS`` and returns one float per sample; ``RewardSpec`` holds the
weights (0 switches a term off) and ``score_answers`` returns the weighted total and each term's
values, which the trainer logs separately.

- ``ew_f1``: the answer's emotion list against the gold list, both mapped through every emotion
  wheel at level 1 with the scorer's own grouping (``Lexicon.groups``, the same lexicon as
  ``python -m affectgpt.eval``: built in, or the official wheels via ``wheels=DIR``); per wheel
  F1 = 2PR/(P+R) of that sample, averaged over the wheels that keep the sample. Per wheel, P and R
  follow ``metrics.label_metrics`` exactly (empty gold counts as neutral; a wheel where the gold
  maps to nothing skips the sample; an empty mapped answer scores 0), so their averages over a
  dataset are the scorer's dataset-level P and R (tests/eval/test_rewards.py checks it to 1e-9).
- ``format``: 1 when the answer has the expected form: the trained ending "... emotional state is
  a, b and c." in direct mode, ``<think>…</think><answer>…</answer>`` in think mode.
- ``len_p1`` / ``len_p2`` / ``len_p3``: AffectGPT-R1's length penalties, applied when the answer
  lists more labels than the gold (else 0): ``1/(|pred|-|gt|+1)``, ``|gt|/|pred|`` and
  ``log|gt|/log|pred|`` (with |gt| = 1 undefined: that case gives ``1/|pred|``, documented below),
  each subtracted as ``-(1 - P)`` times its weight, so a longer-than-gold list costs up to the weight.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from affectgpt.eval.extract import extract_emotions, parse_emotion_list
from affectgpt.eval.parsing import parse_labels
from affectgpt.eval.wheels import Lexicon

MODES = ("direct", "think")
THINK_FORMAT = re.compile(r"^\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*$", re.DOTALL)
THINK_INSTRUCTION = ("First reason about the clues inside <think></think>, then give the emotion labels, separated by "
                     "commas, inside <answer></answer>.")
_AND = re.compile(r"\s+(?:and|or)\s+|\s*;\s*")


# ----------------------------------------------------------------------------- reading an answer
def answer_labels(text: str, mode: str = "direct") -> list[str]:
    """The normalised emotion list of an answer. Direct: as the scorer reads a description
    (structured ending, else the lexicon scan). Think: the ``<answer>`` part split on commas,
    semicolons and and/or (nothing when the format is broken: the reward then is 0)."""
    if mode == "direct":
        return parse_labels(extract_emotions(text))
    if mode != "think":
        raise ValueError(f"reward mode must be one of {MODES}, got {mode!r}")
    m = THINK_FORMAT.match(text)
    if not m:
        return []
    inner = m.group("answer").strip()
    structured = parse_emotion_list(inner)
    if structured is not None:
        return parse_labels(structured)
    return parse_labels(_AND.sub(",", inner.strip(" .")))


def has_format(text: str, mode: str = "direct") -> bool:
    if mode == "think":
        return THINK_FORMAT.match(text) is not None
    return parse_emotion_list(text) is not None


# ----------------------------------------------------------------------------- per-sample wheel scores
def wheel_pr(lexicon: Lexicon, gold: list[str], pred: list[str]) -> list[tuple[float, float] | None]:
    """Per wheel at level 1: this sample's (precision, recall), or None when the wheel skips it
    (its gold maps to nothing there). ``gold``/``pred`` are normalised labels (``parse_labels``)."""
    g_rows = [lexicon.groups(lab) for lab in (gold or ["neutral"])]
    p_rows = [lexicon.groups(lab) for lab in pred]
    out: list[tuple[float, float] | None] = []
    for w in range(len(lexicon.wheels)):
        col = 2 + 2 * w  # the level-1 column of wheel w in Lexicon.groups (as metrics.basic_hit_rate)
        y = {row[col] for row in g_rows} - {None}
        if not y:
            out.append(None)
            continue
        yhat = {row[col] for row in p_rows} - {None}
        hit = len(y & yhat)
        out.append((hit / len(yhat), hit / len(y)) if yhat else (0.0, 0.0))
    return out


def ew_f1(lexicon: Lexicon, gold: list[str], pred: list[str]) -> float:
    """Per-sample emotion-wheel F1: each kept wheel's 2PR/(P+R), averaged over the kept wheels
    (0 when no wheel keeps the sample: its gold is outside every wheel)."""
    kept = [pr for pr in wheel_pr(lexicon, gold, pred) if pr is not None]
    return sum(2 * p * r / (p + r) if p + r else 0.0 for p, r in kept) / len(kept) if kept else 0.0


def length_penalty(kind: str, n_gold: int, n_pred: int) -> float:
    """AffectGPT-R1's P1/P2/P3 in (0, 1]; 1 (no penalty) unless the answer is longer than the gold.
    P3 = log|gt|/log|pred| is 0 for |gt| = 1, which would punish a two-label answer to a one-label
    gold as hard as a hundred labels: that case uses P2's |gt|/|pred| instead."""
    if n_pred <= n_gold or n_gold == 0:
        return 1.0
    if kind == "len_p1":
        return 1.0 / (n_pred - n_gold + 1)
    if kind == "len_p2" or (kind == "len_p3" and n_gold == 1):
        return n_gold / n_pred
    if kind == "len_p3":
        return math.log(n_gold) / math.log(n_pred)
    raise ValueError(f"unknown length penalty {kind!r}")


# ----------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Answer:
    """One rollout as the rewards see it."""

    text: str
    labels: list[str]
    gold: list[str]


def _ew_f1(a: Answer, lexicon: Lexicon, mode: str) -> float:
    return ew_f1(lexicon, a.gold, a.labels)


def _format(a: Answer, lexicon: Lexicon, mode: str) -> float:
    return float(has_format(a.text, mode))


def _penalty(kind: str):
    def term(a: Answer, lexicon: Lexicon, mode: str) -> float:
        return length_penalty(kind, len(set(a.gold)), len(set(a.labels))) - 1.0  # 0 when not longer, else < 0
    return term


TERMS = {"ew_f1": _ew_f1, "format": _format, "len_p1": _penalty("len_p1"), "len_p2": _penalty("len_p2"),
         "len_p3": _penalty("len_p3")}


@dataclass
class RewardSpec:
    """Term weights (0: off, not computed) and the answer mode."""

    weights: dict[str, float] = field(default_factory=lambda: {"ew_f1": 1.0, "format": 0.1})
    mode: str = "direct"

    def __post_init__(self):
        unknown = sorted(set(self.weights) - set(TERMS))
        if unknown:
            raise ValueError(f"unknown reward terms {unknown}; registered: {sorted(TERMS)}")
        if self.mode not in MODES:
            raise ValueError(f"reward mode must be one of {MODES}, got {self.mode!r}")

    @property
    def active(self) -> list[str]:
        return [k for k in TERMS if self.weights.get(k, 0.0)]


def score_answers(texts: list[str], golds: list[list[str]], spec: RewardSpec, lexicon: Lexicon) -> dict:
    """``{"total": [...], "terms": {name: [...]}, "labels": [[...]]}``: per answer, the weighted sum
    and each active term's unweighted value; ``golds`` are raw gold lists (normalised here)."""
    answers = [Answer(t, answer_labels(t, spec.mode), parse_labels(list(g))) for t, g in zip(texts, golds, strict=True)]
    terms = {k: [TERMS[k](a, lexicon, spec.mode) for a in answers] for k in spec.active}
    total = [sum(spec.weights[k] * terms[k][i] for k in terms) for i in range(len(answers))]
    return {"total": total, "terms": terms, "labels": [a.labels for a in answers]}
