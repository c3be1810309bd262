"""A byte-level BPE tokenizer trained on the embedded corpus with the `tokenizers` library.

Like GPT-2 it keeps the leading space on a word (" Mary") and it splits digit runs into pairs, so
the year 1732 is the two tokens " 17" "32" and the greater-than task works as on GPT-2.
The result is saved as a Hugging Face `PreTrainedTokenizerFast` directory.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from interp.data.corpus import EOT

# GPT-2's pre-tokenizer pattern, except that numbers are cut into (space +) two-digit pieces.
_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\d\d|\d| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def train_tokenizer(texts: list[str], vocab_size: int, out_dir: str | Path) -> Path:
    """Train the BPE on `texts` and save a Hugging Face tokenizer directory to `out_dir`."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return out
