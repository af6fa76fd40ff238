"""Build the scorer's built-in emotion lexicon into affectgpt/eval/data/ (run offline, once).

    apt-get install -y wordnet-base wordnet-sense-index   # WordNet 3.0 (Princeton licence)
    pip install nltk lemminflect
    python scripts/build_lexicon.py [--wordnet /usr/share/wordnet] [--out affectgpt/eval/data]

What it writes (the package reads only these; no nltk / WordNet at run time):
- wheel1.csv .. wheel3.csv: three published wheels typed by hand below (Willcox's Feeling
  Wheel 1982, Parrott's tree 2001, Plutchik's wheel 1980), columns level1, level2, level3.
- format_pairs.csv (surface_form, base_word): word families = an emotion vocabulary joined
  by lemminflect lemmas, WordNet derivations / attributes / pertainyms and a small hand
  table; every inflection and -ly adverb of a member points at the family's base word.
- synonym_pairs.csv (wheel_word, synonym): each wheel word's family, the families of its
  WordNet synonyms in emotion senses (first senses only; adjective similar-to links), and a
  curated table, all restricted to the emotion vocabulary.
- PROVENANCE.json: sources, versions, counts and the sha256 of every file.
The output is deterministic (sorted everywhere).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from affectgpt.eval.lexicon_tables import CURATED_SYNONYMS, HAND_FAMILIES, NOT_EMOTION, SEED_WORDS, WHEELS  # noqa: E402

# WordNet 3.0's lexicographer file list; Debian's wordnet-base omits this file, NLTK needs it.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
EMOTION_LEXNAMES = {"noun.feeling", "verb.emotion"}
MAX_SENSES = 3  # only a word's first senses: rare senses make absurd synonyms
MAX_FAMILY = 12


def open_wordnet(src: Path):
    """Copy Debian's WordNet files into a temporary NLTK corpus folder and return the reader."""
    if not (src / "data.noun").is_file() or not (src / "index.sense").is_file():
        raise SystemExit(f"{src}: WordNet 3.0 not found; apt-get install -y wordnet-base wordnet-sense-index")
    root = Path(tempfile.mkdtemp(prefix="affectgpt_wn_"))
    dst = root / "corpora" / "wordnet"
    dst.mkdir(parents=True)
    for p in src.iterdir():  # copies, not symlinks: NLTK's path sandbox rejects links leaving the root
        if p.is_file():
            shutil.copy(p, dst / p.name)
    (dst / "lexnames").write_text("".join(f"{i:02d}\t{n}\t{ {'adj': 3, 'adv': 4, 'nou': 1, 'ver': 2}[n[:3]] }\n"
                                          for i, n in enumerate(LEXNAMES)))
    import nltk

    nltk.data.path.insert(0, str(root))
    from nltk.corpus import wordnet as wn

    wn.ensure_loaded()
    assert wn.get_version() == "3.0", wn.get_version()
    return wn


def parse_wheel(text: str) -> list[tuple[str, str, str]]:
    """'level1: level2(w, w), level2' lines -> (level1, level2, level3) rows ('' for no level 3)."""
    rows = []
    for line in text.strip().splitlines():
        head, _, rest = line.partition(":")
        depth, group = 0, ""
        parts = []
        for ch in rest + ",":
            if ch == "," and depth == 0:
                parts.append(group.strip())
                group = ""
                continue
            depth += ch == "("
            depth -= ch == ")"
            group += ch
        for part in filter(None, parts):
            name, _, inner = part.partition("(")
            words = [w.strip() for w in inner.rstrip(")").split(",") if w.strip()]
            for w in words or [""]:
                rows.append((head.strip(), name.strip(), w))
    return rows


def emotion_synsets(wn, word: str):
    """The first senses of ``word`` that are emotion senses (feeling nouns, emotion verbs, adjectives)."""
    out = []
    for pos in ("n", "v", "a"):
        for s in wn.synsets(word, pos=pos)[:MAX_SENSES]:
            if s.lexname() in EMOTION_LEXNAMES or s.pos() in "as":
                out.append(s)
    return out


def build_vocabulary(wn, wheel_words: set[str]) -> set[str]:
    """Single-word emotion terms: seeds, wheel words, WordNet feeling nouns / emotion verbs and their adjectives."""
    vocab = set(SEED_WORDS) | wheel_words
    for s in wn.all_synsets():
        if s.lexname() not in EMOTION_LEXNAMES:
            continue
        for lemma in s.lemmas():
            name = lemma.name().lower()
            if "_" in name or "-" in name or not name.isalpha():
                continue
            # keep a word only when this feeling sense is among its first senses
            if s in wn.synsets(name)[:MAX_SENSES]:
                vocab.add(name)
                for d in lemma.derivationally_related_forms() + lemma.pertainyms():
                    if d.synset().pos() in "as" and d.name().isalpha():
                        vocab.add(d.name().lower())
        for a in s.attributes():  # happiness -> happy
            for lemma in a.lemmas():
                if lemma.name().isalpha():
                    vocab.add(lemma.name().lower())
    return {w for w in vocab if w not in NOT_EMOTION} | wheel_words


class Families:
    """Union-find over words; a family's base word is chosen once all links are in."""

    def __init__(self, words):
        self.parent = {w: w for w in words}

    def find(self, w):
        while self.parent[w] != w:
            self.parent[w] = self.parent[self.parent[w]]
            w = self.parent[w]
        return w

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self):
        out: dict[str, list[str]] = {}
        for w in self.parent:
            out.setdefault(self.find(w), []).append(w)
        return [sorted(g) for g in out.values()]


def _negated_root(word: str, vocab: set[str]) -> bool:
    return any(
        word.startswith(p) and len(word) > len(p) + 2 and word[len(p) :] in vocab
        for p in ("un", "dis", "non", "in", "im")
    )


def build_families(wn, vocab: set[str], preferred: set[str]):
    """Join vocabulary words into derivational families; returns word -> base word."""
    from lemminflect import getAllLemmas

    fam = Families(vocab)
    links = set()
    for w in sorted(vocab):
        for lemmas in getAllLemmas(w).values():
            links |= {(w, lem) for lem in lemmas if lem in vocab}
        for s in emotion_synsets(wn, w):
            for lemma in s.lemmas():
                if lemma.name().lower() != w:
                    continue
                for d in lemma.derivationally_related_forms() + lemma.pertainyms():
                    if d.name().lower() in vocab:
                        links.add((w, d.name().lower()))
            for a in s.attributes():
                links |= {(w, lem.name().lower()) for lem in a.lemmas() if lem.name().lower() in vocab}
    # an antonym made by a prefix (unhappy, dissatisfied, ...) never joins its root's family
    links = {(a, b) for a, b in links if _negated_root(a, vocab) == _negated_root(b, vocab)}
    for group in HAND_FAMILIES:
        for other in group[1:]:
            if group[0] in vocab and other in vocab:
                links.add((group[0], other))
    # a chain of links can over-merge; families past MAX_FAMILY are split back below
    for a, b in sorted(links):
        fam.union(a, b)
    base_of = {}
    for group in fam.groups():
        if len(group) > MAX_FAMILY:  # split an over-merged chain back into single words
            for w in group:
                base_of[w] = w
            continue
        # base word: a seed/wheel adjective-like word first, then the shortest, then alphabetical
        base = min(group, key=lambda w: (w not in preferred, len(w), w))
        for w in group:
            base_of[w] = base
    return base_of


def surface_forms(wn, word: str) -> set[str]:
    """Inflections (lemminflect) and -ly adverbs (WordNet pertainyms) of one word."""
    from lemminflect import getAllInflections, getAllInflectionsOOV

    forms = {word}
    infl = getAllInflections(word)
    if not infl:
        infl = {**getAllInflectionsOOV(word, "ADJ"), **getAllInflectionsOOV(word, "NOUN")}
    for vals in infl.values():
        forms |= {v.lower() for v in vals}
    forms |= _adverbs(wn).get(word, set())
    return forms


_ADVERBS: dict[str, set[str]] = {}


def _adverbs(wn) -> dict[str, set[str]]:
    """Adjective -> its single-word adverbs (WordNet pertainyms: happily -> happy)."""
    if not _ADVERBS:
        for s in wn.all_synsets("r"):
            for lemma in s.lemmas():
                if lemma.name().isalpha():
                    for p in lemma.pertainyms():
                        _ADVERBS.setdefault(p.name().lower(), set()).add(lemma.name().lower())
    return _ADVERBS


def build(wn, out: Path) -> dict:
    wheel_rows = {k: parse_wheel(text) for k, text in WHEELS.items()}
    wheel_words = {w for rows in wheel_rows.values() for r in rows for w in r if w}
    vocab = build_vocabulary(wn, wheel_words)
    preferred = set(SEED_WORDS) | wheel_words
    base_of = build_families(wn, vocab, preferred)

    forms: dict[str, set[str]] = {}
    for w in sorted(vocab):
        for f in surface_forms(wn, w):
            forms.setdefault(f, set()).add(base_of[w])
    # a surface form that is itself a vocabulary word keeps only its own family (e.g. 'worried')
    for f in list(forms):
        if f in base_of:
            forms[f] = {base_of[f]}

    # synonym links between families
    syn: dict[str, set[str]] = {}  # base -> bases of its synonyms
    for w in sorted(vocab):
        b = base_of[w]
        group = syn.setdefault(b, {b})
        for s in emotion_synsets(wn, w)[:2]:
            related = [s] + (s.similar_tos() if s.pos() in "as" else [])
            for r in related:
                for lemma in r.lemmas():
                    name = lemma.name().lower()
                    if name in base_of:
                        group.add(base_of[name])
    for head, others in CURATED_SYNONYMS.items():
        for o in others:
            if head in base_of and o in base_of:
                syn.setdefault(base_of[head], {base_of[head]}).add(base_of[o])
                syn.setdefault(base_of[o], {base_of[o]}).add(base_of[head])

    out.mkdir(parents=True, exist_ok=True)
    for k, rows in wheel_rows.items():
        with (out / f"wheel{k}.csv").open("w", newline="") as f:
            wr = csv.writer(f, lineterminator="\n")
            wr.writerow(["level1", "level2", "level3"])
            wr.writerows(rows)
    with (out / "format_pairs.csv").open("w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["surface_form", "base_word"])
        for form in sorted(forms):
            for base in sorted(forms[form]):
                wr.writerow([form, base])
    pairs = set()
    for ww in wheel_words:
        if ww not in base_of:
            continue
        wb = base_of[ww]
        for b, group in syn.items():
            if wb in group or b == wb:
                pairs.add((ww, b))
    with (out / "synonym_pairs.csv").open("w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["wheel_word", "synonym"])
        wr.writerows(sorted(pairs))
    return {"vocabulary": len(vocab), "families": len(set(base_of.values())), "surface_forms": len(forms),
            "synonym_pairs": len(pairs), "wheel_words": len(wheel_words)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wordnet", default="/usr/share/wordnet", type=Path)
    ap.add_argument("--out", default=Path(__file__).resolve().parents[1] / "affectgpt" / "eval" / "data", type=Path)
    args = ap.parse_args()
    wn = open_wordnet(args.wordnet)
    counts = build(wn, args.out)
    import lemminflect
    import nltk

    files = sorted(p for p in args.out.iterdir() if p.suffix == ".csv")
    provenance = {
        "built_by": "scripts/build_lexicon.py (hand tables in affectgpt/eval/lexicon_tables.py)",
        "command": "python scripts/build_lexicon.py",
        "sources": {
            "wheels": {
                "wheel1": "Willcox, The Feeling Wheel (1982), typed by hand",
                "wheel2": "Parrott, Emotions in Social Psychology (2001), primary/secondary/tertiary tree, "
                "typed by hand",
                "wheel3": "Plutchik's wheel of emotions (1980): 8 primaries x 3 intensities, typed by hand",
            },
            "wordnet": "Princeton WordNet 3.0 (Debian wordnet-base + wordnet-sense-index), WordNet 3.0 licence",
            "lemminflect": lemminflect.__version__ if hasattr(lemminflect, "__version__") else "0.2.3",
            "nltk": nltk.__version__,
            "curated": "affectgpt/eval/lexicon_tables.py: seed words, hand families, curated synonyms, stop list",
        },
        "counts": counts,
        "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
    }
    (args.out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
