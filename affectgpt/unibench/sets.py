"""The nine MER-UniBench test sets: name, metric, gold vocabulary and the paper's score. Shared by
the scorer (``affectgpt.unibench.score``) and the data readers (``affectgpt.unibench.data``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchSet:
    """One MER-UniBench test set: its metric, gold vocabulary (hit-rate sets) and the paper's A+V+T score."""

    name: str
    title: str
    metric: str  # hit_rate | waf | ew_f1
    paper: float  # AffectGPT audio+video+text, percent
    vocabulary: tuple[str, ...] = ()


MER_LABELS = ("neutral", "angry", "happy", "sad", "worried", "surprise")
MELD_LABELS = ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise")
IEMOCAP_LABELS = ("happy", "sad", "neutral", "anger")
SETS = (
    BenchSet("mer2023", "MER2023", "hit_rate", 78.54, MER_LABELS),
    BenchSet("mer2024", "MER2024", "hit_rate", 78.80, MER_LABELS),
    BenchSet("meld", "MELD", "hit_rate", 55.65, MELD_LABELS),
    BenchSet("iemocapfour", "IEMOCAP", "hit_rate", 60.54, IEMOCAP_LABELS),
    BenchSet("cmumosi", "CMU-MOSI", "waf", 81.30),
    BenchSet("cmumosei", "CMU-MOSEI", "waf", 80.90),
    BenchSet("sims", "CH-SIMS", "waf", 88.49),
    BenchSet("simsv2", "CH-SIMS v2", "waf", 86.18),
    BenchSet("ovmerdplus", "OV-MERD+", "ew_f1", 62.52),
)
BY_NAME = {s.name: s for s in SETS}
