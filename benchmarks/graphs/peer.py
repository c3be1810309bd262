"""circuit-tracer 0.5.0's attribution graph of one prompt on interp's embedded model with interp's transcoders.

Runs in the PEER venv (benchmarks/graphs/circuit_tracer_env.sh), never in the project's: it builds a
TransformerLens 2.x HookedTransformer from the embedded model's config and safetensors, folds its
LayerNorm weights (so circuit-tracer's ``mlp.hook_in`` is the normalised residual that interp's
transcoders read, ``blocks.L.ln2.hook_normalized``), wraps it as circuit-tracer's
`TransformerLensReplacementModel` with interp's transcoders copied into circuit-tracer's
`SingleLayerTranscoder` (JumpReLU), and runs `circuit_tracer.attribute` on the given token ids.

    $CT_VENV/bin/python benchmarks/graphs/peer.py JOB.json OUT.safetensors

JOB.json: {"model_dir", "transcoders_dir", "tokens": [...], "target": null | {"ids": [...]} | {"diff": [a, b]},
"batch_size", "max_n_logits", "desired_logit_prob"}. OUT.safetensors: adjacency, active_features,
selected_features, activation_values, logit ids / probabilities, and in its metadata the replacement
and completeness scores, the pruned sizes, the attribution's wall time and the process's peak RSS.
"""

import json
import resource
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(job):
    from circuit_tracer.replacement_model.replacement_model_transformerlens import TransformerLensReplacementModel
    from circuit_tracer.transcoder.activation_functions import JumpReLU
    from circuit_tracer.transcoder.single_layer_transcoder import SingleLayerTranscoder, TranscoderSet
    from transformer_lens import HookedTransformerConfig
    from transformers import PreTrainedTokenizerFast

    mdir = Path(job["model_dir"])
    cfg_dict = json.loads((mdir / "config.json").read_text())
    cfg = HookedTransformerConfig(**cfg_dict, device="cpu")
    model = TransformerLensReplacementModel(cfg)
    state = {k: v for k, v in load_file(str(mdir / "model.safetensors")).items() if not k.endswith(("attn.mask", "attn.IGNORE"))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith(("attn.mask", "attn.IGNORE")) for k in missing), (missing, unexpected)
    model.process_weights_(fold_ln=True, center_writing_weights=False, center_unembed=False)
    # transformers 4.57 cannot read the tokenizer_config.json that transformers 5 wrote ("TokenizersBackend"),
    # so the fast tokenizer is built from tokenizer.json and the special tokens of that config
    tcfg = json.loads((mdir / "tokenizer" / "tokenizer_config.json").read_text())
    special = {k: tcfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if k in tcfg}
    model.tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(mdir / "tokenizer" / "tokenizer.json"), **special)  # only decode is used
    tcs = {}
    for L in range(cfg.n_layers):
        w = load_file(str(Path(job["transcoders_dir"]) / f"L{L}" / "sae_weights.safetensors"))
        d_in, d_sae = w["W_enc"].shape
        tc = SingleLayerTranscoder(d_in, d_sae, JumpReLU(w["threshold"].clone(), 0.05), L, skip_connection="W_skip" in w,
                                   device=torch.device("cpu"), dtype=torch.float32)
        with torch.no_grad():
            tc.W_enc.copy_(w["W_enc"].T)  # circuit-tracer keeps W_enc as [d_transcoder, d_model]
            tc.W_dec.copy_(w["W_dec"])
            tc.b_enc.copy_(w["b_enc"])
            tc.b_dec.copy_(w["b_dec"])
            if "W_skip" in w:
                tc.W_skip.copy_(w["W_skip"])
        tcs[L] = tc
    tset = TranscoderSet(tcs, feature_input_hook="mlp.hook_in", feature_output_hook="mlp.hook_out", scan="interp-embedded")
    model._configure_replacement_model(tset)
    return model


def main(job_path: str, out_path: str) -> None:
    from circuit_tracer import attribute
    from circuit_tracer.attribution.targets import CustomTarget
    from circuit_tracer.graph import compute_graph_scores, prune_graph

    torch.set_grad_enabled(True)
    job = json.loads(Path(job_path).read_text())
    model = build(job)
    tokens = torch.tensor(job["tokens"], dtype=torch.long)
    target = job.get("target")
    targets = None
    if target and "diff" in target:
        a, b = target["diff"]
        W_U = model.unembed.W_U
        targets = [CustomTarget(target.get("label", "diff"), 1.0, (W_U[:, a] - W_U[:, b]).detach())]
    elif target and "ids" in target:
        targets = torch.tensor(target["ids"], dtype=torch.long)
    rss_before = _rss_mb()
    t0 = time.time()
    graph = attribute(tokens, model, attribution_targets=targets, max_n_logits=job["max_n_logits"],
                      desired_logit_prob=job["desired_logit_prob"], batch_size=job["batch_size"])
    seconds = time.time() - t0
    rss_peak = _rss_mb()
    replacement, completeness = compute_graph_scores(graph)
    pr = prune_graph(graph, 0.8, 0.98)
    n_f = len(graph.selected_features)
    meta = {"seconds": seconds, "rss_before_mb": rss_before, "rss_peak_mb": rss_peak, "replacement": replacement,
            "completeness": completeness, "pruned_nodes": int(pr.node_mask.sum()), "pruned_features": int(pr.node_mask[:n_f].sum()),
            "pruned_edges": int(pr.edge_mask.sum()), "logit_labels": [t.token_str for t in graph.logit_targets],
            "logit_ids": [int(t.vocab_idx) for t in graph.logit_targets], "circuit_tracer": __import__("circuit_tracer").__version__}
    save_file({"adjacency": graph.adjacency_matrix.float().contiguous(), "active_features": graph.active_features.long().contiguous(),
               "selected_features": graph.selected_features.long().contiguous(),
               "activation_values": graph.activation_values.float().contiguous(),
               "logit_probabilities": graph.logit_probabilities.float().contiguous(),
               "node_mask": pr.node_mask.to(torch.uint8).contiguous()}, out_path, metadata={"peer": json.dumps(meta)})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
