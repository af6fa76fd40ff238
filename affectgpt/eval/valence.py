"""The built-in valence table: emotion labels -> positive / negative / neutral, without an LLM.

A word's valence comes from where the built-in lexicon puts it on its three emotion wheels
(Willcox, Parrott, Plutchik): each level-1 group has a polarity (``GROUP_POLARITY``), the word's
valence is the sign of the sum over the wheels it maps into. Words the wheels cannot place or
place misleadingly (polarity words, "neutral", "calm", "mixed") have a fixed value in
``WORD_VALENCE``. A phrase ("lack of confidence") is the sum of its words, turned negative when a
negator is present. A label list is positive / negative by the sign of the sum of its labels'
valences, explicit polarity words counting twice; zero is neutral. Deterministic.
"""
from __future__ import annotations

import re
from functools import cache

from affectgpt.eval.wheels import builtin_lexicon

# Polarity of the level-1 groups of the built-in wheels (affectgpt/eval/data/wheel1..3.csv).
GROUP_POLARITY = {
    "wheel1": {"joyful": 1, "peaceful": 1, "powerful": 1, "mad": -1, "sad": -1, "scared": -1},
    "wheel2": {"joy": 1, "love": 1, "surprise": 0, "anger": -1, "fear": -1, "sadness": -1},
    "wheel3": {"joy": 1, "trust": 1, "anticipation": 1, "surprise": 0, "anger": -1, "disgust": -1, "fear": -1,
               "sadness": -1},
}
# Words whose valence is fixed: polarity words, states that are neither pleasant nor unpleasant
# (kept at 0 although a wheel places them), and frequent answer words the built-in lexicon lacks.
WORD_VALENCE = {
    "positive": 1, "negative": -1, "neutral": 0, "mixed": 0, "complex": 0, "ambivalent": 0, "conflicted": 0,
    "serious": 0, "seriousness": 0, "focused": 0, "focus": 0, "attentive": 0, "thoughtful": 0, "contemplative": 0,
    "pensive": 0, "reflective": 0, "surprised": 0, "surprise": 0, "curious": 0, "curiosity": 0,
    "professional": 0, "rational": 0, "unknown": 0, "none": 0,
    "positivity": 1, "humorous": 1, "humor": 1, "joking": 1, "confidence": 1, "determination": 1, "encouraging": 1,
    "encouragement": 1, "supportive": 1, "support": 1, "appreciation": 1, "appreciative": 1, "interested": 1,
    "engaged": 1, "understanding": 1, "friendly": 1, "liking": 1,
    "negativity": -1, "indifferent": -1, "disinterested": -1, "urgent": -1, "urgency": -1, "warning": -1,
    "pressure": -1, "pressured": -1, "uncertainty": -1, "uncertain": -1, "mocking": -1, "disapproval": -1,
    "criticism": -1, "complaint": -1, "cautious": -1,
}
POLARITY_WORDS = {"positive", "negative"}
POLARITY_WEIGHT = 2  # an explicit "positive" / "negative" outweighs one emotion word of the other sign
NEGATORS = {"not", "no", "lack", "lacking", "without", "un", "non", "absence", "less"}
_TOKEN = re.compile(r"[a-z]+")


@cache
def word_valence(word: str) -> int:
    """-1, 0 or +1 for one normalised label (a word or a short phrase)."""
    if word in WORD_VALENCE:
        return WORD_VALENCE[word]
    lexicon = builtin_lexicon()
    groups = lexicon.groups(word)
    total = 0
    for w, wheel in enumerate(lexicon.wheels):
        group = groups[2 + 2 * w]  # level-1 column of wheel w
        if group is not None:
            total += GROUP_POLARITY.get(wheel.name, {}).get(group, 0)
    if total or groups[0] is not None:
        return (total > 0) - (total < 0)
    tokens = _TOKEN.findall(word)
    if len(tokens) < 2:
        return 0
    parts = sum(word_valence(t) for t in tokens if t not in NEGATORS)
    if any(t in NEGATORS for t in tokens):
        return -1 if parts >= 0 else 1
    return (parts > 0) - (parts < 0)


def sentiment_of(labels: list[str]) -> str:
    """'positive', 'negative' or 'neutral' for a normalised label list (empty -> neutral)."""
    total = sum(word_valence(lab) * (POLARITY_WEIGHT if lab in POLARITY_WORDS else 1) for lab in labels)
    return "positive" if total > 0 else "negative" if total < 0 else "neutral"
