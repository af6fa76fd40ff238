"""AffectGPT's built-in scorer: OV-MER emotion-wheel metrics, label extraction, clue overlap.

``score(preds, golds, wheels=None)`` returns the metrics dict; ``python -m affectgpt.eval``
is the command line. Importing this package is cheap: no torch, no transformers.
"""
from affectgpt.eval.extract import extract_emotions
from affectgpt.eval.parsing import parse_labels, read_records
from affectgpt.eval.scorer import score
from affectgpt.eval.wheels import Lexicon, builtin_lexicon, load_lexicon

__all__ = ["score", "extract_emotions", "read_records", "parse_labels", "Lexicon", "load_lexicon", "builtin_lexicon"]
