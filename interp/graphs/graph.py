"""`Graph`: an attribution graph of one prompt (circuit-tracer's `Graph`, field for field), saved without pickle.

Node order (circuit-tracer's): ``[features (n_f), errors (n_layers * n_pos, layer-major),
tokens (n_pos), logits (n_logits)]``. ``adjacency[target, source]`` is the direct effect of the
source node on the target node in the local replacement model; only feature and logit rows are
non-zero (errors and tokens have no inputs).

On disk (`save_graph` / `load_graph`) a graph is one safetensors file: the tensors, plus the rest as
JSON in the file's metadata header (safetensors' own ``__metadata__``), so nothing is unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from interp.errors import InterpError

FORMAT = "interp-attribution-graph/1"


@dataclass
class Graph:
    """An unpruned attribution graph (see the module docstring for the node order)."""

    prompt: str  # the prompt text as given
    input_tokens: torch.Tensor  # [n_pos] token ids (BOS included where the model prepends it)
    token_strs: list[str]  # the decoded tokens, one per position
    active_features: torch.Tensor  # [n_active, 3] (layer, pos, feature) of every active transcoder feature
    activation_values: torch.Tensor  # [n_active] their activations
    selected_features: torch.Tensor  # [n_f] indices into active_features that are nodes (all, unless capped)
    adjacency: torch.Tensor  # [N, N] direct effects, rows = targets, columns = sources
    logit_tokens: list[str]  # label of each logit node ("Paris", or "logit(a)-logit(b)")
    logit_ids: list[int]  # vocabulary id of each logit node (vocab_size + i for a custom direction)
    logit_probabilities: torch.Tensor  # [n_logits] weight of each logit node (its softmax probability)
    n_layers: int
    vocab_size: int
    model_name: str | None = None
    transcoders: dict[str, str] = field(default_factory=dict)  # layer -> transcoder directory
    info: dict = field(default_factory=dict)  # how it was built (thresholds, batch size, timings, deviations)

    @property
    def n_pos(self) -> int:
        return len(self.input_tokens)

    @property
    def n_features(self) -> int:
        return len(self.selected_features)

    @property
    def n_logits(self) -> int:
        return len(self.logit_ids)

    @property
    def error_start(self) -> int:
        return self.n_features

    @property
    def token_start(self) -> int:
        return self.n_features + self.n_layers * self.n_pos

    @property
    def logit_start(self) -> int:
        return self.token_start + self.n_pos

    @property
    def n_nodes(self) -> int:
        return self.logit_start + self.n_logits

    def node_kind(self, i: int) -> str:
        """"feature", "error", "token" or "logit"."""
        if i < self.error_start:
            return "feature"
        if i < self.token_start:
            return "error"
        return "token" if i < self.logit_start else "logit"

    def feature_key(self, i: int) -> tuple[int, int, int]:
        """(layer, pos, feature) of feature node i."""
        layer, pos, feat = self.active_features[self.selected_features[i]].tolist()
        return int(layer), int(pos), int(feat)

    def node_parts(self, i: int) -> tuple[str, int | None, int, int | None]:
        """(kind, layer, pos, index) of node i: the feature id of a feature node, the position's token
        id of a token node, the logit's rank of a logit node (at the last position), None for errors."""
        kind = self.node_kind(i)
        if kind == "feature":
            layer, pos, feat = self.feature_key(i)
            return kind, layer, pos, feat
        if kind == "error":
            layer, pos = divmod(i - self.error_start, self.n_pos)
            return kind, layer, pos, None
        if kind == "token":
            pos = i - self.token_start
            return kind, None, pos, int(self.input_tokens[pos])
        return kind, None, self.n_pos - 1, i - self.logit_start

    def feature_node(self, layer: int, pos: int, feature: int) -> int:
        """The node index of an active feature; `InterpError` when it is not a node of this graph."""
        want = torch.tensor([layer, pos, feature])
        hit = (self.active_features[self.selected_features] == want).all(-1).nonzero()
        if len(hit) == 0:
            raise InterpError(f"feature {feature} at layer {layer}, position {pos} is not an active node of this graph")
        return int(hit[0, 0])

    def node_label(self, i: int) -> str:
        kind, layer, pos, idx = self.node_parts(i)
        if kind == "feature":
            return f"L{layer} F{idx} @{pos} {self.token_strs[pos]!r}"
        if kind == "error":
            return f"L{layer} error @{pos} {self.token_strs[pos]!r}"
        if kind == "token":
            return f"token @{pos} {self.token_strs[pos]!r}"
        return f"logit {self.logit_tokens[idx]!r}"


def save_graph(graph: Graph, path: str | Path) -> Path:
    """Write `graph` to one safetensors file (atomically; see the module docstring)."""
    from interp.io import atomic_save_safetensors

    tensors = {"input_tokens": graph.input_tokens.long().contiguous(), "active_features": graph.active_features.long().contiguous(),
               "activation_values": graph.activation_values.float().contiguous(),
               "selected_features": graph.selected_features.long().contiguous(), "adjacency": graph.adjacency.float().contiguous(),
               "logit_probabilities": graph.logit_probabilities.float().contiguous()}
    meta = {"format": FORMAT, "prompt": graph.prompt, "token_strs": graph.token_strs, "logit_tokens": graph.logit_tokens,
            "logit_ids": graph.logit_ids, "n_layers": graph.n_layers, "vocab_size": graph.vocab_size,
            "model_name": graph.model_name, "transcoders": graph.transcoders, "info": graph.info}
    return atomic_save_safetensors(tensors, path, metadata={"graph": json.dumps(meta)})


def load_graph(path: str | Path) -> Graph:
    """A graph written by `save_graph`; one-line `InterpError` for anything else."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise InterpError(f"graph file {p} does not exist")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("graph", "null") or "null")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise InterpError(f"{p} is not a readable graph file: {' '.join(str(e).split())[:120]}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InterpError(f"{p} is not an interp attribution graph (format {FORMAT})")
    return Graph(prompt=meta["prompt"], input_tokens=tensors["input_tokens"], token_strs=meta["token_strs"],
                 active_features=tensors["active_features"], activation_values=tensors["activation_values"],
                 selected_features=tensors["selected_features"], adjacency=tensors["adjacency"],
                 logit_tokens=meta["logit_tokens"], logit_ids=meta["logit_ids"],
                 logit_probabilities=tensors["logit_probabilities"], n_layers=meta["n_layers"], vocab_size=meta["vocab_size"],
                 model_name=meta.get("model_name"), transcoders=meta.get("transcoders") or {}, info=meta.get("info") or {})
