"""Deterministic label extraction from a free-text emotion description (``--extractor rules``).

1. Structured ending (:func:`parse_emotion_list`, the one parser of the emotion list for
   inference, training-time evaluation and this scorer): when the last sentence says "...
   emotional state is a, b and c." the listed words are the labels, as written (open
   vocabulary, not filtered by any lexicon), except a last item cut by the end of the text.
2. Otherwise a lexicon scan: every word whose form is in the built-in lexicon counts, by
   its family's base word (reported in the form the text used first), with a weight per
   sentence: concluding sentences ("therefore", "we can infer", the last sentence) weigh
   ``CONCLUSION_WEIGHT``, others ``BODY_WEIGHT``;
   quoted subtitles are skipped; a negated mention ("not angry", "without anger", "absence
   of nervousness or unease") counts nothing; a hedged one ("a hint of", "slightly") counts
   ``HEDGE_FACTOR``. Labels are the base words whose total reaches ``THRESHOLD`` times the
   best score, best first, at most ``MAX_LABELS``.
"""
from __future__ import annotations

import re
from functools import lru_cache

from affectgpt.eval.lexicon_tables import SCAN_STOP
from affectgpt.eval.wheels import builtin_lexicon

CONCLUSION_WEIGHT = 1.0
BODY_WEIGHT = 0.5
HEDGE_FACTOR = 0.6
THRESHOLD = 0.3
MAX_LABELS = 6
NEGATION_WINDOW = 4

_STRUCTURED = re.compile(
    r"emotional states?\s+(?:is|are|was|were|would be|could be|seems to be|appears to be|can be described as)"
    r"\s*:?\s*(?P<labels>[^.!?\n]+?)\s*(?P<closed>[.!?]*)\s*$",
    re.IGNORECASE,
)
_LAST_SENTENCE = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")
_LIST_SPLIT = re.compile(r"\s*(?:,|;|/|\band/or\b|\band\b|\bor\b|\bas well as\b)\s*")
_ITEM_PREFIX = re.compile(r"^(?:a bit|a little|a|an|the|very|quite|slightly|somewhat|rather|mostly|mainly|both)\s+")
_SENTENCES = re.compile(r"(?<=[.!?])\s+")
_CLAUSES = re.compile(r"[,;:()]")
_TOKEN = re.compile(r"[a-z]+(?:['-][a-z]+)*")
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”")

_CONCLUSION_CUES = (
    "therefore", "in summary", "overall", "in conclusion", "to sum up", "thus", "infer", "inferred",
    "emotional state", "expresses", "conveys",
)
_NEGATIONS = {"not", "no", "never", "without", "nor", "neither", "absence", "lack", "lacking", "free", "instead"}
_HEDGES = ("hint of", "touch of", "trace of", "slight", "slightly", "a bit", "a little", "somewhat", "mild")


def parse_emotion_list(text: str) -> list[str] | None:
    """Labels of the structured ending "... emotional state is a, b and c." in the last sentence
    (or line) of ``text``: lower-cased, articles and intensifiers dropped, each once, in order.
    ``None`` when the last sentence is no such ending (callers then scan the whole text).

    Only the last sentence counts: earlier "emotional state is ..." phrases describe
    ("her emotional state is escalating"), they don't conclude. When the text ends inside the
    list (no closing . ! or ?: a generation cut by max_new_tokens) the last item is kept only
    when it is a whole word of the built-in lexicon: "anxious, sa" gives ["anxious"],
    "anxious and sad" gives both; a cut list with no whole item left gives ``None``.
    """
    stripped = text.strip()
    m = _STRUCTURED.search(_LAST_SENTENCE.split(stripped)[-1]) if stripped else None
    if not m:
        return None
    items = [_clean_item(item) for item in _LIST_SPLIT.split(m.group("labels").lower())]
    if not m.group("closed") and items[-1] and items[-1] not in _whole_words():
        items.pop()  # the text stops inside this word
    labels = []
    for item in items:
        if item and len(item.split()) <= 4 and item not in labels:
            labels.append(item)
    return labels or None


def _clean_item(item: str) -> str:
    item = item.strip(" \t'\"`*-:")
    while True:
        stripped = _ITEM_PREFIX.sub("", item)
        if stripped == item:
            return item
        item = stripped


@lru_cache(maxsize=1)
def _whole_words() -> frozenset[str]:
    """Every word form of the built-in lexicon (a cut "frustr" is none of them)."""
    return frozenset(builtin_lexicon().forms)


@lru_cache(maxsize=1)
def _scan_table() -> dict[str, str]:
    """Surface form -> base word of every scannable emotion word in the built-in lexicon."""
    table = {}
    for form, bases in builtin_lexicon().forms.items():
        if " " in form or form in SCAN_STOP or bases[0] in SCAN_STOP:
            continue
        table[form] = bases[0]
    return table


def _is_conclusion(sentence: str, is_last: bool) -> bool:
    return is_last or any(cue in sentence for cue in _CONCLUSION_CUES)


def scan_emotions(text: str) -> list[str]:
    """Lexicon scan of free text (the fallback of :func:`extract_emotions`); base words, best first."""
    table = _scan_table()
    text = _QUOTED.sub(" ", text.lower())
    sentences = [s for s in _SENTENCES.split(text) if s.strip()]
    scores: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    surface: dict[str, str] = {}  # base word -> the form the text used first (what we report)
    position = 0
    for i, sentence in enumerate(sentences):
        weight = CONCLUSION_WEIGHT if _is_conclusion(sentence, i == len(sentences) - 1) else BODY_WEIGHT
        for clause in _CLAUSES.split(sentence):
            tokens = _TOKEN.findall(clause)
            for j, tok in enumerate(tokens):
                base = table.get(tok)
                if base is None:
                    continue
                position += 1
                window = tokens[max(0, j - NEGATION_WINDOW):j]
                if any(w in _NEGATIONS or w.endswith("n't") for w in window):
                    continue
                before = " ".join(tokens[max(0, j - 3):j])
                factor = HEDGE_FACTOR if any(h in before for h in _HEDGES) else 1.0
                scores[base] = scores.get(base, 0.0) + weight * factor
                if base not in first_seen:
                    first_seen[base] = position
                    surface[base] = tok
    if not scores:
        return []
    best = max(scores.values())
    ranked = sorted(scores, key=lambda b: (-scores[b], first_seen[b]))
    return [surface[b] for b in ranked if scores[b] >= THRESHOLD * best][:MAX_LABELS]


def extract_emotions(text: str) -> list[str]:
    """Emotion labels of one description: the structured ending when present, else a lexicon scan.

    Deterministic; an empty or emotion-free text gives ``[]``.
    """
    if not text or not text.strip():
        return []
    structured = parse_emotion_list(text)
    if structured is not None:
        return structured
    return scan_emotions(text)
