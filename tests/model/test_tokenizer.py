"""builtin:qwen2.5: Qwen2.5's vocabulary and special-token ids, built offline; modality tokens."""

import pytest

from affectgpt.model.tokenizer import BUILTIN_QWEN25, MODALITY_TOKENS, load_tokenizer, modality_token_ids


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(BUILTIN_QWEN25)


def test_qwen25_ids_match_the_real_tokenizer(tok):
    # ids of Qwen2.5-*-Instruct (tokenizer.json): <|endoftext|> 151643, <|im_start|> 151644,
    # <|im_end|> 151645, <|video_pad|> 151656; vocabulary 151,643 ranks + 22 specials
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|video_pad|>"]) == [
        151643,
        151644,
        151645,
        151656,
    ]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok("Hello world").input_ids == [9707, 1879]
    # the two placeholders Qwen2.5 lacks come right after its 22 specials
    assert modality_token_ids(tok) == {"video": 151656, "audio": 151665, "fusion": 151666}
    assert len(tok) == 151667


def test_round_trip_and_placeholders_stay_single_tokens(tok):
    text = "他很生气。 Elle est très fâchée! 😠"
    assert tok.decode(tok(text).input_ids) == text
    run = MODALITY_TOKENS["audio"] * 5
    assert tok(run, add_special_tokens=False).input_ids == [151665] * 5


def test_a_tokenizer_without_chat_template_is_refused(tmp_path, tok):
    import json

    tok.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    for f in tmp_path.glob("chat_template*"):
        f.unlink()
    with pytest.raises(ValueError, match="has no chat template"):
        load_tokenizer(str(tmp_path))
