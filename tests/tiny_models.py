"""Tiny random-weight Hugging Face causal LMs of each supported family, written offline.

    path = make_tiny_hf_model("llama", tmp_path / "llama")
    model = interp.models.load_model(str(path))

Each directory is what `save_pretrained` writes for a real checkpoint (config.json,
model.safetensors, generation_config.json) plus a tokenizer that `AutoTokenizer` loads with
`local_files_only=True`. The tokenizer is the embedded model's byte-level BPE (2,304 ids), so the
embedded corpus, its names (one token each) and its task prompts work on every tiny model. Like
the real families, the Llama, Gemma, Mistral, Phi-3 and Mixtral tokenizers prepend BOS; GPT-2, GPT-NeoX, Qwen and OLMo-2 do not.

Sizes: 2 layers, d_model 64, 4 heads (2 key/value heads where the family has grouped-query
attention), n_ctx 128. Weights come from the family's own initialiser under `torch.manual_seed`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

FAMILIES = ("gpt2", "gpt_neox", "llama", "gemma2", "gemma3", "qwen2", "qwen3", "mistral", "phi3", "olmo2")
MOE_FAMILIES = ("mixtral", "qwen3_moe")
VOCAB = 2304  # the embedded tokenizer's 2,277 ids padded to a multiple of 64, like the embedded model
N_CTX = 128
_PREPENDS_BOS = {"gpt2": False, "gpt_neox": False, "llama": True, "gemma2": True, "gemma3": True, "qwen2": False,
                 "qwen3": False, "mistral": True, "phi3": True, "olmo2": False, "mixtral": True, "qwen3_moe": False}


def _config(family: str):
    import transformers as T

    common = dict(vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    if family == "gpt2":
        return T.GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=N_CTX, **common)
    if family == "gpt_neox":
        return T.GPTNeoXConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                               max_position_embeddings=N_CTX, rotary_pct=0.25, use_parallel_residual=True, **common)
    if family == "llama":
        return T.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=N_CTX, **common)
    if family == "gemma2":
        return T.Gemma2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2, head_dim=16, max_position_embeddings=N_CTX, sliding_window=64,
                              query_pre_attn_scalar=16, **common)
    if family == "qwen2":
        return T.Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=N_CTX, tie_word_embeddings=False, **common)
    gqa = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
               max_position_embeddings=N_CTX, **common)
    if family == "gemma3":
        return T.Gemma3TextConfig(head_dim=16, sliding_window=64, query_pre_attn_scalar=16, architectures=["Gemma3ForCausalLM"], **gqa)
    if family == "qwen3":
        return T.Qwen3Config(head_dim=16, tie_word_embeddings=False, **gqa)
    if family == "mistral":
        return T.MistralConfig(sliding_window=None, **gqa)
    if family == "phi3":
        return T.Phi3Config(**gqa)
    if family == "olmo2":
        return T.Olmo2Config(**gqa)
    if family == "mixtral":
        return T.MixtralConfig(num_local_experts=4, num_experts_per_tok=2, **gqa)
    if family == "qwen3_moe":
        return T.Qwen3MoeConfig(head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64,
                                decoder_sparse_step=1, mlp_only_layers=[], tie_word_embeddings=False, **gqa)
    raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES + MOE_FAMILIES)}")


def write_tiny_tokenizer(out_dir: str | Path, prepends_bos: bool = True) -> Path:
    """The embedded BPE tokenizer saved into `out_dir` (BOS prepended or not)."""
    from transformers import PreTrainedTokenizerFast

    from interp.models import EMBEDDED_DIR

    src = EMBEDDED_DIR / "tokenizer" / "tokenizer.json"
    spec = json.loads(src.read_text())
    if not prepends_bos:
        spec["post_processor"] = None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "_raw_tokenizer.json"
    raw.write_text(json.dumps(spec))
    tok = PreTrainedTokenizerFast(tokenizer_file=str(raw), bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  pad_token="<|endoftext|>", unk_token="<|endoftext|>", model_max_length=N_CTX)
    tok.save_pretrained(str(out))
    raw.unlink()
    return out


def make_tiny_hf_model(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random-weight `family` causal LM and its tokenizer to `out_dir`; return the path."""
    from transformers import AutoModelForCausalLM

    cfg = _config(family)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    out = Path(out_dir)
    model.save_pretrained(str(out))
    write_tiny_tokenizer(out, prepends_bos=_PREPENDS_BOS[family])
    return out


def hf_logits(model_dir: str | Path, tokens: torch.Tensor) -> torch.Tensor:
    """Logits of the Hugging Face model in `model_dir` (float32, eager attention) for `tokens`."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True, torch_dtype=torch.float32,
                                              attn_implementation="eager").eval()
    with torch.no_grad():
        return hf(tokens).logits
