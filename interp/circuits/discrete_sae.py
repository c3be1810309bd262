"""Circuits from discretized SAE codes (O'Neill & Bui, 2024, "Sparse Autoencoders Enable Scalable
and Reliable Circuit Identification in Language Models").

1. For each prompt and head (l, h), the vector the head writes to the residual stream,
   ``o[l, h] = z[l, :, h] @ W_O[l, h]`` ([pos, d_model]), averaged over the real positions
   (``position="mean"``, the paper) or taken at the last position (``position="last"``).
2. ONE sparse autoencoder, shared by all heads (ReLU + L1, SAELens' ``standard`` architecture), is
   trained on these vectors from a handful of positive and negative prompts (default 10 pairs).
3. Each (prompt, head) becomes an integer code: the argmax latent (``top_k_codes=k``: the set of
   its k largest active latents).
4. Head score = the number of distinct codes the head shows on positive prompts and never on
   negative ones:  ``score(h) = |codes_pos(h) \\ codes_neg(h)|``.
5. Edge variant: for heads u, v with layer(u) < layer(v), score(u -> v) = the number of distinct
   code *pairs* (code_u, code_v) seen together on a positive prompt and never on a negative one.

Options beyond the paper (all off by default): ``top_k_codes`` > 1, ``per_layer`` SAEs (one SAE
per layer instead of one shared), other SAELens architectures (``arch="topk"``), ``unit_norm``
(every head vector scaled to norm 1, so quiet heads are not all lumped into one code),
``qkv_edges`` (below), and ``threshold="faithful"`` in `interp.circuits.run` (choose the cut by
the model's own metric).

q/k/v-specific edges (``qkv_edges=True``): a head reads the residual stream three ways, so an
edge u -> v is really three edges, into v's query, key or value. Each head's query, key and value
vectors (TransformerLens ``hook_q`` / ``hook_k`` / ``hook_v``, [pos, d_head], reduced over
positions like the outputs) get codes from one more SAE per input kind, shared by all heads;
score(u -> v via x) = the distinct (code of u's output, code of v's x input) pairs seen together
on a positive prompt and never on a negative one. ``edge_scores`` is then the max over q/k/v and
``qkv_edge_scores`` keeps all three.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from transformer_lens import HookedTransformer

from interp.circuits.patching import head_z, real_mask
from interp.circuits.tasks import CircuitTask
from interp.hooks import capture

log = logging.getLogger(__name__)

ARCHS = ("standard", "topk")


@dataclass
class DiscreteSAEConfig:
    """How the discretized-code method runs (defaults follow the paper)."""

    n_train: int = 10  # prompt pairs the SAE is trained on and codes are read from
    position: str = "mean"  # "mean" over real positions (paper) or "last" position
    arch: str = "standard"  # SAELens architecture: "standard" (ReLU + L1, paper) or "topk"
    d_sae: int = 0  # SAE width; 0 = d_model (a few hundred vectors need no wider dictionary)
    l1: float = 1.0  # L1 coefficient (standard arch), on inputs scaled to mean norm sqrt(d_model)
    k: int = 8  # active latents per input (topk arch)
    steps: int = 100  # Adam steps (full batch up to `batch` vectors, else random batches)
    batch: int = 4096  # most vectors per step, so cost per step stays flat as n_train grows
    lr: float = 1e-2  # Adam learning rate
    top_k_codes: int = 1  # codes per (prompt, head): 1 = argmax latent (paper)
    per_layer: bool = False  # one SAE per layer instead of one shared by all heads
    edges: bool = True  # also compute code co-occurrence edge scores
    unit_norm: bool = False  # scale every head-output vector to norm 1 first (small heads get codes too)
    qkv_edges: bool = False  # edges into each head's q, k and v input separately (see module docstring)
    seed: int = 0  # SAE initialisation seed

    def __post_init__(self):
        if self.position not in ("mean", "last"):
            raise ValueError(f"position must be 'mean' or 'last', not {self.position!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, not {self.arch!r}")
        if min(self.n_train, self.steps, self.top_k_codes, self.k, self.batch) < 1:
            raise ValueError("n_train, steps, top_k_codes, k and batch must be >= 1")


class DiscreteSAEResult(NamedTuple):
    """Scores of the discretized-code method."""

    node_scores: Float[torch.Tensor, "layer head"]  # distinct positive-only codes per head
    edge_scores: Float[torch.Tensor, "layer head layer head"]  # positive-only code pairs, u -> v
    codes_pos: Int[torch.Tensor, "n layer head k"]  # codes on positive prompts
    codes_neg: Int[torch.Tensor, "n layer head k"]  # codes on negative prompts
    qkv_edge_scores: Float[torch.Tensor, "3 layer head layer head"] | None = None  # u -> v via q, k, v (qkv_edges)


def _reduce_positions(a: Float[torch.Tensor, "n pos ..."], mask: torch.Tensor, position: str) -> Float[torch.Tensor, "n ..."]:
    """Mean over the real (unpadded) positions, or the last real position."""
    lengths = mask.sum(1)
    if position == "mean":
        m = mask.view(*mask.shape, *([1] * (a.dim() - 2))).to(a.dtype)
        return (a * m).sum(1) / lengths.view(-1, *([1] * (a.dim() - 2)))
    return a[torch.arange(a.shape[0]), lengths - 1]


@torch.no_grad()
def head_outputs(model: HookedTransformer, tokens: torch.Tensor, mask: torch.Tensor, position: str = "mean") -> Float[torch.Tensor, "n layer head d_model"]:
    """What each head writes to the residual stream, z @ W_O, reduced over positions."""
    outs = [_reduce_positions(torch.einsum("bphd,hdm->bphm", z, model.W_O[layer]), mask, position)
            for layer, z in enumerate(head_z(model, tokens))]
    return torch.stack(outs, 1)


@torch.no_grad()
def head_inputs(model: HookedTransformer, tokens: torch.Tensor, mask: torch.Tensor, position: str = "mean") -> Float[torch.Tensor, "3 n layer head d_head"]:
    """Each head's query, key and value vectors (``hook_q/k/v``), reduced over positions like
    `head_outputs`."""
    L = model.cfg.n_layers
    names = [f"blocks.{l}.attn.hook_{x}" for x in "qkv" for l in range(L)]
    with capture(model, names) as acts:
        model(tokens)
    out = []
    for name in names:
        a = acts[name]  # [n, pos, head, d_head]
        if a.shape[2] != model.cfg.n_heads:  # grouped-query attention: one k/v per group, shared by its heads
            a = a.repeat_interleave(model.cfg.n_heads // a.shape[2], dim=2)
        out.append(_reduce_positions(a, mask, position))
    return torch.stack(out).view(3, L, *out[0].shape).transpose(1, 2)


def train_code_sae(acts: Float[torch.Tensor, "N d"], cfg: DiscreteSAEConfig):
    """Train a SAELens training-SAE on `acts` with Adam. Returns (sae, input scale).

    Written here rather than with SAELens' runner because the runner streams tokens through a
    model; we have a few hundred in-memory vectors and need it to take well under a second."""
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.saes.sae import TrainStepInput

    torch.manual_seed(cfg.seed)
    d = acts.shape[1]
    scale = float(d ** 0.5 / acts.norm(dim=1).mean().clamp_min(1e-8))
    x = acts * scale
    d_sae = cfg.d_sae or d
    if cfg.arch == "standard":
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d, d_sae=d_sae, l1_coefficient=cfg.l1))
    else:
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=d_sae, k=min(cfg.k, d_sae)))
    coeffs = {k: float(getattr(v, "value", v)) for k, v in sae.get_coefficients().items()}
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    for step in range(cfg.steps):
        xb = x if len(x) <= cfg.batch else x[torch.randint(len(x), (cfg.batch,), generator=gen)]
        out = sae.training_forward_pass(TrainStepInput(sae_in=xb, coefficients=coeffs, dead_neuron_mask=None,
                                                       n_training_steps=step, is_logging_step=False))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    log.debug("code SAE: final loss %.4f", float(out.loss.detach()))
    sae.eval()
    return sae, scale


@torch.no_grad()
def to_codes(sae, scale: float, acts: Float[torch.Tensor, "... d"], k: int = 1) -> Int[torch.Tensor, "... k"]:
    """The top-k active latents of each vector (argmax for k=1); -1 where fewer than k are active."""
    f = sae.encode(acts * scale)
    vals, idx = f.topk(k, dim=-1)
    return torch.where(vals > 0, idx, torch.full_like(idx, -1))


def node_scores(codes_pos: torch.Tensor, codes_neg: torch.Tensor) -> Float[torch.Tensor, "layer head"]:
    """Per head: distinct codes seen on positive prompts and never on negative ones (-1 ignored)."""
    _, L, H, _ = codes_pos.shape
    out = torch.zeros(L, H)
    for layer in range(L):
        for head in range(H):
            p = set(codes_pos[:, layer, head].flatten().tolist()) - {-1}
            n = set(codes_neg[:, layer, head].flatten().tolist())
            out[layer, head] = len(p - n)
    return out


def edge_scores(codes_pos: torch.Tensor, codes_neg: torch.Tensor, recv_pos: torch.Tensor | None = None,
                recv_neg: torch.Tensor | None = None) -> Float[torch.Tensor, "layer head layer head"]:
    """Per head pair u -> v (layer(u) < layer(v)): distinct co-occurring code pairs on positive
    prompts that never co-occur on negative ones. `recv_*` (default: the same codes) are the codes
    read on the receiving side, e.g. of v's query input."""
    n, L, H, k = codes_pos.shape
    recv_pos = codes_pos if recv_pos is None else recv_pos
    recv_neg = codes_neg if recv_neg is None else recv_neg

    def pairs(codes, recv, lu, hu, lv, hv):
        s = set()
        for i in range(codes.shape[0]):
            for a in codes[i, lu, hu].tolist():
                for b in recv[i, lv, hv].tolist():
                    if a >= 0 and b >= 0:
                        s.add((a, b))
        return s

    out = torch.zeros(L, H, L, H)
    for lu in range(L):
        for lv in range(lu + 1, L):
            for hu in range(H):
                for hv in range(H):
                    out[lu, hu, lv, hv] = len(pairs(codes_pos, recv_pos, lu, hu, lv, hv) - pairs(codes_neg, recv_neg, lu, hu, lv, hv))
    return out


def discrete_sae_scores(model: HookedTransformer, task: CircuitTask, cfg: DiscreteSAEConfig | None = None) -> DiscreteSAEResult:
    """Run the method on the first `cfg.n_train` pairs of `task` (see module docstring)."""
    cfg = cfg or DiscreteSAEConfig()
    t = task.subset(slice(0, min(cfg.n_train, len(task))))
    if len(t) < cfg.n_train:
        log.warning("task has %d pairs, fewer than n_train=%d; using all", len(t), cfg.n_train)
    mask = real_mask(t)
    o_pos = head_outputs(model, t.pos_tokens, mask, cfg.position)  # [n, L, H, d]
    o_neg = head_outputs(model, t.neg_tokens, mask, cfg.position)
    n, L, H, d = o_pos.shape
    if cfg.unit_norm:
        o_pos = o_pos / o_pos.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        o_neg = o_neg / o_neg.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    if cfg.per_layer:
        cp, cn = [], []
        for layer in range(L):
            train = torch.cat([o_pos[:, layer], o_neg[:, layer]]).reshape(-1, d)
            sae, scale = train_code_sae(train, cfg)
            cp.append(to_codes(sae, scale, o_pos[:, layer], cfg.top_k_codes))
            cn.append(to_codes(sae, scale, o_neg[:, layer], cfg.top_k_codes))
        codes_pos, codes_neg = torch.stack(cp, 1), torch.stack(cn, 1)
    else:
        sae, scale = train_code_sae(torch.cat([o_pos, o_neg]).reshape(-1, d), cfg)
        codes_pos = to_codes(sae, scale, o_pos, cfg.top_k_codes)
        codes_neg = to_codes(sae, scale, o_neg, cfg.top_k_codes)
    nodes = node_scores(codes_pos, codes_neg)
    qkv = None
    if cfg.qkv_edges:  # replaces the co-occurrence edges
        i_pos = head_inputs(model, t.pos_tokens, mask, cfg.position)  # [3, n, L, H, d_head]
        i_neg = head_inputs(model, t.neg_tokens, mask, cfg.position)
        per_x = []
        for x in range(3):
            sae, scale = train_code_sae(torch.cat([i_pos[x], i_neg[x]]).reshape(-1, i_pos.shape[-1]), cfg)
            rp, rn = to_codes(sae, scale, i_pos[x], cfg.top_k_codes), to_codes(sae, scale, i_neg[x], cfg.top_k_codes)
            per_x.append(edge_scores(codes_pos, codes_neg, rp, rn))
        qkv = torch.stack(per_x)
        edges = qkv.amax(0)
    else:
        edges = edge_scores(codes_pos, codes_neg) if cfg.edges else torch.zeros(L, H, L, H)
    return DiscreteSAEResult(nodes, edges, codes_pos, codes_neg, qkv)
