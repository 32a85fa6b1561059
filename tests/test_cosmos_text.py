"""Caption tokenizer (tokenizers library, loads with AutoTokenizer) and the small T5 text encoder."""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, T5EncoderModel

from wm_hub.models.cosmos.text_cosmos import build_caption_tokenizer, caption_encoder_config, caption_words

CAPTIONS = ["a red ball falls and bounces; the paddle pushes a blue box right",
            "a green triangle slides left"]


def test_vocabulary_and_round_trip(tmp_path):
    assert caption_words(["A red ball; a Box."]) == [".", ";", "a", "ball", "box", "red"]
    tokenizer = build_caption_tokenizer(CAPTIONS, model_max_length=8)
    ids = tokenizer("a red ball falls")["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a red ball falls"
    assert tokenizer("a purple ball")["input_ids"][1] == tokenizer.unk_token_id  # unseen word
    batch = tokenizer(CAPTIONS, padding="max_length", truncation=True, return_tensors="pt")
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"][1].tolist() == [1] * 6 + [0] * 2  # 5 words + eos
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert loaded(CAPTIONS[0])["input_ids"] == tokenizer(CAPTIONS[0])["input_ids"]
    assert loaded.model_max_length == 8 and loaded.pad_token_id == 0


def test_encoder_over_the_vocabulary(tmp_path):
    tokenizer = build_caption_tokenizer(CAPTIONS)
    torch.manual_seed(0)
    encoder = T5EncoderModel(caption_encoder_config(tokenizer, d_model=32, num_layers=1, num_heads=2)).eval()
    batch = tokenizer(CAPTIONS, padding=True, return_tensors="pt")
    hidden = encoder(**batch).last_hidden_state
    assert hidden.shape == (2, batch["input_ids"].shape[1], 32)
    encoder.save_pretrained(tmp_path / "text_encoder")
    loaded = T5EncoderModel.from_pretrained(tmp_path / "text_encoder").eval()
    torch.testing.assert_close(loaded(**batch).last_hidden_state, hidden)
