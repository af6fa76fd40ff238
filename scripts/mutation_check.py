"""Break the code on purpose and check that the tests guarding it fail: ``python scripts/mutation_check.py [NAME ...]``.

Each mutation is one textual edit of one source file (a realistic bug: a detached adapter, zeroed audio
tokens, LoRA never applied, an off-by-one in the validation split, a top-level PyAV import). The script
applies it, runs the tests that guard that path, restores the file (always, also on Ctrl-C), and prints
one line per mutation. Exit 1 when some mutation leaves its tests passing (a guard that cannot fail).
Takes ~6 minutes on 2 cores for all five; do not edit the tree while it runs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEARNING = ["tests/recipe/test_learning.py", "-k", "stored_reference or disappears or beats"]

# name: (file, text, replacement, tests)
MUTATIONS = {
    "detach_video": ("affectgpt/model/media.py", 'tokens = model.video_adapter(feats["video"])',
                     'tokens = model.video_adapter(feats["video"]).detach()', LEARNING),
    "zero_audio": ("affectgpt/model/media.py", "tokens, counts = model.audio_adapter([audio[i] for i in idx])",
                   "tokens, counts = model.audio_adapter([audio[i] for i in idx])\n        tokens = tokens * 0",
                   LEARNING),
    "lora_off": ("affectgpt/model/llm.py", "    if not lora.enabled:\n        return model",
                 "    if True:\n        return model", LEARNING),
    "metrics_off_by_one": ("affectgpt/recipe/training.py", "samples = self.val_samples[: self.cfg.eval.max_samples]",
                           "samples = self.val_samples[1 : self.cfg.eval.max_samples]",
                           ["tests/apps/test_end_to_end.py", "-k", "metrics_json"]),
    "collate_imports_pyav": ("affectgpt/data/collate.py", "from affectgpt.data.manifest import Sample\n",
                             "from affectgpt.data.manifest import Sample\n"
                             "from affectgpt.data.media import MediaError  # noqa: F401\n",
                             ["tests/tools/test_gpu_check.py", "-k", "needs_neither or sane_numbers"]),
}


def check(name: str) -> bool:
    """True when the mutation makes its tests fail."""
    rel, text, replacement, tests = MUTATIONS[name]
    path = ROOT / rel
    original = path.read_text(encoding="utf-8")
    if original.count(text) != 1:
        raise SystemExit(f"{rel}: the text of mutation {name!r} is not there exactly once; update MUTATIONS")
    started = time.time()
    try:
        path.write_text(original.replace(text, replacement), encoding="utf-8")
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT,
                           capture_output=True, text=True)
    finally:
        path.write_text(original, encoding="utf-8")
    failed = [ln.split(" - ")[0].removeprefix("FAILED ") for ln in r.stdout.splitlines() if ln.startswith("FAILED")]
    caught = r.returncode != 0 and bool(failed)
    which = ", ".join(f.split("::")[-1] for f in failed) or r.stdout.strip()[-200:]
    print(f"{name:<22} {'caught' if caught else 'NOT CAUGHT'} in {time.time() - started:.0f} s: "
          f"{len(failed)} failed ({which})", flush=True)
    return caught


def main(argv: list[str]) -> int:
    names = argv or list(MUTATIONS)
    unknown = [n for n in names if n not in MUTATIONS]
    if unknown:
        print(f"unknown mutation(s) {unknown}; choose from {list(MUTATIONS)}", file=sys.stderr)
        return 2
    return 0 if all([check(n) for n in names]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
