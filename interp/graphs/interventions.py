"""Ablate or steer graph features, rerun the model, and set the measured logit change beside the graph's
prediction (circuit-tracer's `feature_intervention` / `setup_intervention_with_freeze`).

An intervention sets features (layer, pos, feature) to new values. At each touched layer the MLP's
output gets the transcoder's difference ``decode(f') - decode(f)`` added, where f are the
transcoder's activations on the *intervened* run (so upstream changes reach them) and f' is f with
the set values; the MLP's error term is untouched (circuit-tracer's ``intervention_hook``).

Modes (`freeze`):

* ``"attention"`` (circuit-tracer's default ``freeze_attention``): attention patterns fixed to the
  clean run's; LayerNorm scales, MLPs (through their transcoders' features) and everything else respond;
* ``"none"``: nothing frozen, the plain model with the edit;
* ``"replacement"``: the local replacement model the graph describes: attention patterns and every
  LayerNorm scale fixed to the clean run, every MLP replaced by its transcoder (features recomputed
  from the intervened input, the edits applied, skip connection live) plus its error fixed to the
  clean run's; the graph's linear prediction differs from it only where a feature crosses its
  threshold or TopK set;
* ``"direct"``: attention patterns, every LayerNorm scale and every MLP output fixed to the clean run
  (circuit-tracer's ``constrained_layers`` over all layers, skip connections recomputed): the model is
  then linear in the edit, and the change of a downstream pre-activation or logit equals the graph's
  direct edge exactly.

The graph's prediction (`predict`) propagates the edit linearly through the graph: with
``A[t, s]`` the edge from s to t (an effect of s's whole activation a_s), a change ``da_s`` moves t's
pre-activation by ``A[t, s] / a_s * da_s``; downstream features pass on their own change
(JumpReLU / TopK are the identity where active), clamped features keep theirs, and logit nodes sum
what reaches them. Error nodes and tokens do not move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from interp.errors import InterpError
from interp.graphs.graph import Graph

FREEZE = ("attention", "none", "direct", "replacement")


@dataclass(frozen=True)
class FeatureEdit:
    """Set one feature at one position to `value` (0: ablate; a multiple of its activation: steer)."""

    layer: int
    pos: int
    feature: int
    value: float


def _frozen_values(model, tokens: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    from interp.hooks import capture

    with torch.no_grad(), capture(model, names) as acts:
        model(tokens[None])
    return dict(acts)


def edit_hooks(model, tokens: torch.Tensor, tcs: dict[int, object], edits: list[FeatureEdit], freeze: str = "attention",
               record: dict | None = None) -> list[tuple[str, Callable]]:
    """The hooks of the module docstring; `record` (if given) receives each layer's pre-activations
    ``{layer: [n_pos, d_sae]}`` on the intervened run."""
    if freeze not in FREEZE:
        raise InterpError(f"freeze must be one of {', '.join(FREEZE)}, got {freeze!r}")
    n_layers = model.cfg.n_layers
    names = []
    if freeze in ("attention", "direct", "replacement"):
        names += [f"blocks.{L}.attn.hook_pattern" for L in range(n_layers)]
    if freeze in ("direct", "replacement"):
        names += [f"blocks.{L}.{h}" for L in range(n_layers) for h in ("ln1.hook_scale", "ln2.hook_scale", "hook_mlp_out",
                                                                        "ln2.hook_normalized")]
        names += ["ln_final.hook_scale"]
    clean = _frozen_values(model, tokens, names) if names else {}
    by_layer: dict[int, list[FeatureEdit]] = {}
    for e in edits:
        by_layer.setdefault(e.layer, []).append(e)
    xs: dict[int, torch.Tensor] = {}

    # values are looked up by the name asked for, never `hook.name`: TransformerBridge calls a hook with
    # its canonical name (`blocks.L.mlp.hook_out` for the alias `blocks.L.hook_mlp_out`)
    def fixed(act, hook, name):
        return clean[name].to(act.dtype).expand_as(act)

    def keep_x(act, hook, L):
        xs[L] = act
        if record is not None:
            tc = tcs[L]
            record[L] = (act[0].float() @ tc.W_enc + tc.b_enc).detach()

    def mlp(act, hook, L):
        tc = tcs[L]
        x = xs.pop(L).float()
        out = act
        if freeze == "replacement":
            x0 = clean[f"blocks.{L}.ln2.hook_normalized"].float()
            err = clean[f"blocks.{L}.hook_mlp_out"].float() - tc(x0)  # SAELens' forward: decode(encode(x)) (+ skip)
            f = tc.encode(x)
            for e in by_layer.get(L, []):
                f[:, e.pos, e.feature] = e.value
            out = tc.decode(f) + err
            W = getattr(tc, "W_skip", None)
            if W is not None:
                out = out + x @ W.T
            return out.to(act.dtype)
        if freeze == "direct":
            out = clean[f"blocks.{L}.hook_mlp_out"].to(act.dtype).expand_as(act).clone()
            W = getattr(tc, "W_skip", None)
            if W is not None:  # the skip path stays live: its change moves with the residual stream
                out = out + ((x - clean[f"blocks.{L}.ln2.hook_normalized"].float()) @ W.T).to(act.dtype)
        if L in by_layer:
            f = tc.encode(x)
            f2 = f.clone()
            for e in by_layer[L]:
                f2[:, e.pos, e.feature] = e.value
            out = out + (tc.decode(f2) - tc.decode(f)).to(act.dtype)
        return out

    hooks: list[tuple[str, Callable]] = [(n, lambda a, hook, n=n: fixed(a, hook, n)) for n in names
                                         if not n.endswith(("hook_mlp_out", "ln2.hook_normalized"))]
    for L in range(n_layers):
        hooks += [(f"blocks.{L}.ln2.hook_normalized", lambda a, hook, L=L: keep_x(a, hook, L)),
                  (f"blocks.{L}.hook_mlp_out", lambda a, hook, L=L: mlp(a, hook, L))]
    return hooks


@torch.no_grad()
def run_with_edits(model, tokens: torch.Tensor, tcs: dict[int, object], edits: list[FeatureEdit], freeze: str = "attention",
                   record: dict | None = None) -> torch.Tensor:
    """Logits [n_pos, d_vocab] of the intervened run."""
    from interp.hooks import intervene

    with intervene(model, edit_hooks(model, tokens, tcs, edits, freeze, record)):
        return model(tokens[None])[0].float()


def predict(graph: Graph, edits: list[FeatureEdit]) -> torch.Tensor:
    """[n_logits] the graph's linear prediction of each logit node's change (module docstring)."""
    A = graph.adjacency.float()
    n_f = graph.n_features
    acts = graph.activation_values[graph.selected_features].float()
    delta = torch.zeros(graph.n_nodes)
    clamped = torch.zeros(graph.n_nodes, dtype=torch.bool)
    for e in edits:
        i = graph.feature_node(e.layer, e.pos, e.feature)
        delta[i] = e.value - acts[i]
        clamped[i] = True
    per_unit = torch.zeros(graph.n_nodes)
    per_unit[:n_f] = 1.0 / acts.clamp(min=1e-12)
    order = sorted(range(n_f), key=lambda i: graph.feature_key(i)[0])  # a feature only reads earlier layers
    for i in order:
        if not clamped[i]:
            delta[i] = (A[i, :n_f] * per_unit[:n_f] * delta[:n_f]).sum()
    return (A[graph.logit_start:, :n_f] * per_unit[:n_f] * delta[:n_f]).sum(-1)


@dataclass
class InterventionResult:
    """Predicted and measured change of each logit node's value under one intervention."""

    labels: list[str]  # the logit nodes
    predicted: list[float]  # the graph's linear prediction
    measured: list[float]  # the model rerun with the edit (mode `freeze`)
    freeze: str
    clean: list[float]  # each logit node's value on the clean run


def logit_node_values(graph: Graph, logits_last: torch.Tensor, model) -> torch.Tensor:
    """[n_logits] the value each logit node stands for: demeaned logit of a token, or logit(a) - logit(b)."""
    out = []
    for lab, vid in zip(graph.logit_tokens, graph.logit_ids):
        if vid < graph.vocab_size:
            out.append(logits_last[vid] - logits_last.mean())
        else:
            spec = graph.info.get("target", {}).get("diff")
            if not spec:
                raise InterpError(f"logit node {lab!r} has no recorded direction")
            from interp.graphs.targets import single_token

            out.append(logits_last[single_token(model, spec[0])] - logits_last[single_token(model, spec[1])])
    return torch.stack(out)


def check_intervention(graph: Graph, model, transcoders, edits: list[FeatureEdit], freeze: str = "attention") -> InterventionResult:
    """Run `edits` on the model (mode `freeze`) and compare each logit node's change with `predict`."""
    from interp.transcoders.io import TranscoderSet

    if not edits:
        raise InterpError("give at least one feature to ablate or steer")
    tcs = transcoders.transcoders if isinstance(transcoders, TranscoderSet) else dict(transcoders)
    device = next(model.parameters()).device
    tokens = graph.input_tokens.to(device)
    for e in edits:
        graph.feature_node(e.layer, e.pos, e.feature)  # an edit of a feature that is not a node: one line, before work
    clean = logit_node_values(graph, run_with_edits(model, tokens, tcs, [], "none")[-1], model)
    after = logit_node_values(graph, run_with_edits(model, tokens, tcs, edits, freeze)[-1], model)
    return InterventionResult(labels=list(graph.logit_tokens), predicted=predict(graph, edits).tolist(),
                              measured=(after - clean).tolist(), freeze=freeze, clean=clean.tolist())
