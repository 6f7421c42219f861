"""A tokenizer for "pretrained" model folders saved by the tests, built offline with the
`tokenizers` library (test_backbone.py, test_positions.py)."""

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from arc_efe.data.tokens import TOKEN_TEXT

# Byte-level like Qwen's tokenizer ("\n" is stored as "Ċ"), so transformers 5, which
# rebuilds a Qwen2Tokenizer around the vocabulary of a qwen2 folder, reads it the same way.
# Extra tokens first and ours reversed, so the ARC ids are neither 0..15 nor in order.
TOK_VOCAB = ["<unk>", "a", "b", "c", "Ġ", "ab"] + [{"\n": "Ċ"}.get(t, t)
                                                  for t in reversed(TOKEN_TEXT)]


def make_tokenizer(normalizer=None) -> PreTrainedTokenizerFast:
    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(TOK_VOCAB)}, merges=[("a", "b")],
                              unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    if normalizer is not None:
        tk.normalizer = normalizer
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>")
