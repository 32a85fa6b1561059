"""Text for the Cosmos-style world models: a word-level tokenizer built with the `tokenizers` library on
the captions' vocabulary, and a small `T5EncoderModel` over it.

Nothing can be downloaded where wm_hub's checkpoints are trained, so there is no pretrained T5 to
freeze: the encoder is small, randomly initialised, and trained with the world model on the captions
(a handful of colours, shapes and verbs). The tokenizer is saved as a `PreTrainedTokenizerFast`, so
`AutoTokenizer.from_pretrained(folder)` loads it as users expect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from transformers import PreTrainedTokenizerFast, T5Config

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
WORD = re.compile(r"\w+|[^\w\s]+")  # as the `Whitespace` pre-tokenizer splits


def caption_words(captions: Iterable[str]) -> list[str]:
    """The sorted vocabulary of `captions`: lower-cased words and punctuation marks."""
    return sorted({w for caption in captions for w in WORD.findall(caption.lower())})


def build_caption_tokenizer(captions: Iterable[str], model_max_length: int = 48) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the words of `captions` (T5's special tokens: pad 0, eos 1, unk 2; an
    eos closes every text). Unknown words map to `<unk>`; texts are cut at `model_max_length` tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {PAD: 0, EOS: 1, UNK: 2}
    for word in caption_words(captions):
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, unk_token=UNK,
                                   model_max_length=model_max_length, padding_side="right")


def caption_encoder_config(
    tokenizer: PreTrainedTokenizerFast, d_model: int = 128, num_layers: int = 2, num_heads: int = 4
) -> T5Config:
    """A small T5 encoder configuration over `tokenizer`'s vocabulary."""
    return T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // num_heads, d_ff=4 * d_model,
        num_layers=num_layers, num_heads=num_heads, dropout_rate=0.0, feed_forward_proj="gated-gelu",
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, is_encoder_decoder=False,
    )
