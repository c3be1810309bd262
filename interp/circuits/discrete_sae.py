"""Circuits from discretized SAE codes (O'Neill & Bui, 2024, "Sparse Autoencoders Enable Scalable
and Reliable Circuit Identification in Language Models"; code: github charlieoneill11/sae-circuits).

The default (``DiscreteSAEConfig()``) is the authors' protocol (``experiments/main_results.py``):

1. For each prompt and head (l, h), the head's raw residual-stream output ``hook_result`` (=
   ``z[l, :, h] @ W_O[l, h]``), averaged over all real positions including BOS.
2. ``n_train`` = 10 prompts are drawn at random (seed) from the pooled positive + negative prompts;
   ONE SAE, shared by all heads, is trained on those prompts' head vectors: the authors' own SAE
   (`interp.circuits.paper_sae`: ReLU, tied pre-bias, unit-norm rows, 200 latents, MSE + lambda
   mean L1 with lambda 0.02, 0.05 for docstring, Adam lr 1e-3, 500 full-batch epochs), no input scaling.
3. Codes are read on ALL ``n_read`` = 250 positive + 250 negative prompts: code = argmax latent,
   so a vector with no active latent gets code 0 (numpy argmax of zeros, as the authors).
4. Head score = the number of distinct codes the head shows on positive prompts and never on
   negative ones:  ``score(h) = |codes_pos(h) \\ codes_neg(h)|``.
5. Edge variant: for heads u, v with layer(u) < layer(v), score(u -> v) = the number of distinct
   code *pairs* (code_u, code_v) seen together on a positive prompt and never on a negative one.

Per seed only the SAE initialisation and the training subset change; the prompts are fixed per task.

``DiscreteSAEConfig.legacy()`` is this package's earlier default, kept as a named option: train on
the first 10 *pairs* and read codes only on them, SAELens' ``standard`` SAE (l1 1.0, d_sae = d_model,
lr 1e-2, 100 steps) on inputs rescaled to mean norm sqrt(d_model), inactive vectors skipped.
Other options: ``top_k_codes`` > 1, ``per_layer`` SAEs, ``arch="topk"`` (SAELens), ``unit_norm``
(every head vector scaled to norm 1), ``qkv_edges`` (below), and ``threshold="faithful"`` in
`interp.circuits.run` (choose the cut by the model's own metric).

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
from transformer_lens.model_bridge import TransformerBridge

from interp.circuits.patching import head_z, real_mask
from interp.circuits.tasks import CircuitTask
from interp.hooks import capture

log = logging.getLogger(__name__)

ARCHS = ("paper", "standard", "topk")
PAPER_L1 = {"docstring": 0.05}  # the authors' lambda per task (main_results.py); 0.02 otherwise
PAPER_L1_DEFAULT = 0.02


@dataclass
class DiscreteSAEConfig:
    """How the discretized-code method runs (defaults: the authors' protocol, see module docstring)."""

    n_train: int = 10  # prompts (paper) or pairs (train_on="pairs") the SAE is trained on
    train_on: str = "prompts"  # "prompts": n_train drawn at random from pos+neg (paper); "pairs": the first n_train pairs
    n_read: int = 250  # pairs whose codes are read and scored (paper: 250 + 250); 0 = only the training pairs
    position: str = "mean"  # "mean" over real positions incl. BOS (paper) or "last" position
    arch: str = "paper"  # "paper" (the authors' SAE), or SAELens' "standard" (ReLU + L1) / "topk"
    d_sae: int = 200  # SAE width; 0 = d_model
    l1: float | None = None  # L1 coefficient; None = the paper's per task (0.05 docstring, 0.02 else), 1.0 for standard
    scale_inputs: bool = False  # rescale inputs to mean norm sqrt(d_model) before the SAE (legacy)
    inactive: str = "zero"  # a vector with no active latent: "zero" = code 0 (paper), "skip" = no code
    k: int = 8  # active latents per input (topk arch)
    steps: int = 500  # Adam steps (full batch up to `batch` vectors, else random batches)
    batch: int = 4096  # most vectors per step, so cost per step stays flat as n_train grows
    lr: float = 1e-3  # Adam learning rate
    top_k_codes: int = 1  # codes per (prompt, head): 1 = argmax latent (paper)
    per_layer: bool = False  # one SAE per layer instead of one shared by all heads
    edges: bool = True  # also compute code co-occurrence edge scores
    unit_norm: bool = False  # scale every head-output vector to norm 1 first (small heads get codes too)
    qkv_edges: bool = False  # edges into each head's q, k and v input separately (see module docstring)
    seed: int = 0  # SAE initialisation and training-subset seed

    def __post_init__(self):
        if self.position not in ("mean", "last"):
            raise ValueError(f"position must be 'mean' or 'last', not {self.position!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, not {self.arch!r}")
        if self.train_on not in ("prompts", "pairs"):
            raise ValueError(f"train_on must be 'prompts' or 'pairs', not {self.train_on!r}")
        if self.inactive not in ("zero", "skip"):
            raise ValueError(f"inactive must be 'zero' or 'skip', not {self.inactive!r}")
        if min(self.n_train, self.steps, self.top_k_codes, self.k, self.batch) < 1:
            raise ValueError("n_train, steps, top_k_codes, k and batch must be >= 1")
        if self.n_read < 0 or self.d_sae < 0 or (self.l1 is not None and self.l1 < 0):
            raise ValueError("n_read, d_sae and l1 must be >= 0")

    @classmethod
    def legacy(cls, **kw) -> "DiscreteSAEConfig":
        """This package's earlier default (see module docstring), kept as a named option."""
        base = dict(train_on="pairs", n_read=0, arch="standard", d_sae=0, l1=1.0, scale_inputs=True, inactive="skip",
                    steps=100, lr=1e-2)
        return cls(**{**base, **kw})

    def l1_for(self, task_name: str) -> float:
        if self.l1 is not None:
            return self.l1
        return PAPER_L1.get(task_name, PAPER_L1_DEFAULT) if self.arch == "paper" else 1.0

    def n_pairs(self) -> int:
        """Prompt pairs the method needs from its task."""
        return max(self.n_read, self.n_train if self.train_on == "pairs" else (self.n_train + 1) // 2)


PRESETS = ("paper", "legacy")


def preset(name: str, **kw) -> DiscreteSAEConfig:
    """A named configuration: "paper" (the default) or "legacy"."""
    if name not in PRESETS:
        raise ValueError(f"unknown discrete-sae preset {name!r}; known: {', '.join(PRESETS)}")
    return DiscreteSAEConfig.legacy(**kw) if name == "legacy" else DiscreteSAEConfig(**kw)


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
def head_outputs(model: TransformerBridge, tokens: torch.Tensor, mask: torch.Tensor, position: str = "mean") -> Float[torch.Tensor, "n layer head d_model"]:
    """What each head writes to the residual stream, z @ W_O, reduced over positions."""
    outs = [_reduce_positions(torch.einsum("bphd,hdm->bphm", z, model.W_O[layer]), mask, position)
            for layer, z in enumerate(head_z(model, tokens))]
    return torch.stack(outs, 1)


@torch.no_grad()
def head_inputs(model: TransformerBridge, tokens: torch.Tensor, mask: torch.Tensor, position: str = "mean") -> Float[torch.Tensor, "3 n layer head d_head"]:
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


@torch.enable_grad()  # callers (the dashboard) may run with gradients off; training needs them
def train_code_sae(acts: Float[torch.Tensor, "N d"], cfg: DiscreteSAEConfig, l1: float | None = None):
    """Train the code SAE on `acts`. Returns (sae, input scale); `sae.encode(x * scale)` gives latents.

    ``arch="paper"``: the authors' SAE (`interp.circuits.paper_sae`). Otherwise a SAELens training
    SAE with Adam, written here rather than with SAELens' runner because the runner streams tokens
    through a model; we have a few hundred in-memory vectors and need it to take well under a second."""
    d = acts.shape[1]
    lam = cfg.l1 if l1 is None else l1
    lam = 1.0 if lam is None else lam
    scale = float(d ** 0.5 / acts.norm(dim=1).mean().clamp_min(1e-8)) if cfg.scale_inputs else 1.0
    x = (acts * scale).float()
    d_sae = cfg.d_sae or d
    if cfg.arch == "paper":
        from interp.circuits.paper_sae import train_paper_sae

        if len(x) > cfg.batch:  # the paper trains full batch; a subsample keeps huge models' cost flat
            x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.batch].to(x.device)]
        return train_paper_sae(x, d_sae=d_sae, lam=lam, lr=cfg.lr, epochs=cfg.steps, seed=cfg.seed), scale
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.saes.sae import TrainStepInput

    torch.manual_seed(cfg.seed)
    if cfg.arch == "standard":
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d, d_sae=d_sae, l1_coefficient=lam, device=str(x.device)))
    else:
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=d_sae, k=min(cfg.k, d_sae), device=str(x.device)))
    sae = sae.to(x.device)
    coeffs = {k: float(getattr(v, "value", v)) for k, v in sae.get_coefficients().items()}
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    for step in range(cfg.steps):
        xb = x if len(x) <= cfg.batch else x[torch.randint(len(x), (cfg.batch,), generator=gen).to(x.device)]
        out = sae.training_forward_pass(TrainStepInput(sae_in=xb, coefficients=coeffs, dead_neuron_mask=None,
                                                       n_training_steps=step, is_logging_step=False))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    log.debug("code SAE: final loss %.4f", float(out.loss.detach()))
    sae.eval()
    return sae, scale


@torch.no_grad()
def to_codes(sae, scale: float, acts: Float[torch.Tensor, "... d"], k: int = 1, inactive: str = "skip") -> Int[torch.Tensor, "... k"]:
    """The top-k active latents of each vector (argmax for k=1); -1 where fewer than k are active.
    ``inactive="zero"``: a vector with no active latent gets code 0 (the paper's numpy argmax)."""
    f = sae.encode(acts.float() * scale)
    vals, idx = f.topk(k, dim=-1)
    codes = torch.where(vals > 0, idx, torch.full_like(idx, -1))
    if inactive == "zero":
        none = (codes < 0).all(-1)
        codes[..., 0] = torch.where(none, torch.zeros_like(codes[..., 0]), codes[..., 0])
    return codes


def _only_positive(keys_pos: torch.Tensor, keys_neg: torch.Tensor, group: int, n_groups: int) -> torch.Tensor:
    """Per group: how many distinct keys occur in `keys_pos` and never in `keys_neg`, where a key's
    group is ``key // group``. Sets as sorted unique int64 keys (torch.unique / isin) instead of
    Python sets: one pass over all heads (or head pairs) at once."""
    only = keys_pos.unique()
    only = only[~torch.isin(only, keys_neg)]
    return torch.bincount(only // group, minlength=n_groups).float()


def node_scores(codes_pos: torch.Tensor, codes_neg: torch.Tensor) -> Float[torch.Tensor, "layer head"]:
    """Per head: distinct codes seen on positive prompts and never on negative ones (-1 ignored).
    Key of (head, code) = head * D + code, D = 1 + the largest code."""
    _, L, H, _ = codes_pos.shape
    D = int(max(codes_pos.max(), codes_neg.max(), 0)) + 1
    heads = torch.arange(L * H).view(1, L, H, 1)

    def keys(codes):
        return (heads * D + codes)[codes >= 0]

    return _only_positive(keys(codes_pos), keys(codes_neg), D, L * H).view(L, H)


def edge_scores(codes_pos: torch.Tensor, codes_neg: torch.Tensor, recv_pos: torch.Tensor | None = None,
                recv_neg: torch.Tensor | None = None) -> Float[torch.Tensor, "layer head layer head"]:
    """Per head pair u -> v (layer(u) < layer(v)): distinct co-occurring code pairs on positive
    prompts that never co-occur on negative ones. `recv_*` (default: the same codes) are the codes
    read on the receiving side, e.g. of v's query input. Key of (u, v, a, b) = ((u * LH + v) * D + a) * D + b
    over every prompt, forward pair and code slot at once (n * (LH)^2 * k^2 int64s)."""
    n, L, H, k = codes_pos.shape
    recv_pos = codes_pos if recv_pos is None else recv_pos
    recv_neg = codes_neg if recv_neg is None else recv_neg
    NH, kr = L * H, recv_pos.shape[-1]
    D = int(max(codes_pos.max(), codes_neg.max(), recv_pos.max(), recv_neg.max(), 0)) + 1
    layer = torch.arange(L).repeat_interleave(H)
    forward = (layer[:, None] < layer[None, :]).view(1, NH, NH, 1, 1)
    uv = torch.arange(NH * NH).view(1, NH, NH, 1, 1)

    def keys(codes, recv):
        a = codes.reshape(-1, NH, 1, k, 1)
        b = recv.reshape(-1, 1, NH, 1, kr)
        return ((uv * D + a) * D + b)[forward & (a >= 0) & (b >= 0)]

    return _only_positive(keys(codes_pos, recv_pos), keys(codes_neg, recv_neg), D * D, NH * NH).view(L, H, L, H)


def _outputs(model, task: CircuitTask, position: str, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Head outputs on the positive and negative prompts, in chunks of `chunk` pairs."""
    mask = real_mask(task)
    pos, neg = [], []
    for i in range(0, len(task), chunk):
        sl = slice(i, i + chunk)
        w = int(task.lengths[sl].max())
        pos.append(head_outputs(model, task.pos_tokens[sl, :w], mask[sl, :w], position))
        neg.append(head_outputs(model, task.neg_tokens[sl, :w], mask[sl, :w], position))
    return torch.cat(pos), torch.cat(neg)


def training_rows(cfg: DiscreteSAEConfig, n_pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which read prompts the SAE trains on: indices into the positive and into the negative prompts.
    ``train_on="prompts"``: `n_train` prompts drawn (seed `cfg.seed`) from the pooled 2 * n_pairs
    prompts, as the authors' ``prepare_data`` (randperm of pos + neg, first 10); "pairs": the first
    `n_train` pairs."""
    if cfg.train_on == "pairs":
        idx = torch.arange(min(cfg.n_train, n_pairs))
        return idx, idx
    pick = torch.randperm(2 * n_pairs, generator=torch.Generator().manual_seed(cfg.seed))[: cfg.n_train]
    return pick[pick < n_pairs], pick[pick >= n_pairs] - n_pairs


def discrete_sae_scores(model: TransformerBridge, task: CircuitTask, cfg: DiscreteSAEConfig | None = None,
                        cache: dict | None = None) -> DiscreteSAEResult:
    """Run the method on `task` (see module docstring): codes are read on the first `cfg.n_read`
    pairs (0: on the training pairs only), the SAE trains on `training_rows` of them. `cache`, a
    dict the caller owns, keeps the head outputs between seeds on the same prompts (they depend on
    the model, prompts and position only)."""
    cfg = cfg or DiscreteSAEConfig()
    n_read = cfg.n_read or cfg.n_train
    t = task.subset(slice(0, min(n_read, len(task))))
    if len(t) < n_read:
        log.warning("task has %d pairs, fewer than the %d discrete-sae reads codes on; using all", len(t), n_read)
    key = (id(model), tuple(t.positive), tuple(t.negative), cfg.position)
    if cache is not None and key in cache:
        o_pos, o_neg = cache[key]
    else:
        o_pos, o_neg = _outputs(model, t, cfg.position)  # [n, L, H, d]
        if cache is not None:
            cache[key] = (o_pos, o_neg)
    n, L, H, d = o_pos.shape
    if cfg.unit_norm:
        o_pos = o_pos / o_pos.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        o_neg = o_neg / o_neg.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    tp, tn = training_rows(cfg, n)
    tp, tn = tp.to(o_pos.device), tn.to(o_pos.device)
    lam = cfg.l1_for(task.name)
    codes = lambda sae, scale, a: to_codes(sae, scale, a, cfg.top_k_codes, cfg.inactive)  # noqa: E731
    if cfg.per_layer:
        cp, cn = [], []
        for layer in range(L):
            train = torch.cat([o_pos[tp, layer], o_neg[tn, layer]]).reshape(-1, d)
            sae, scale = train_code_sae(train, cfg, lam)
            cp.append(codes(sae, scale, o_pos[:, layer]))
            cn.append(codes(sae, scale, o_neg[:, layer]))
        codes_pos, codes_neg = torch.stack(cp, 1), torch.stack(cn, 1)
    else:
        sae, scale = train_code_sae(torch.cat([o_pos[tp], o_neg[tn]]).reshape(-1, d), cfg, lam)
        codes_pos, codes_neg = codes(sae, scale, o_pos), codes(sae, scale, o_neg)
    codes_pos, codes_neg = codes_pos.cpu(), codes_neg.cpu()
    nodes = node_scores(codes_pos, codes_neg)
    qkv = None
    if cfg.qkv_edges:  # replaces the co-occurrence edges
        mask = real_mask(t)
        i_pos = head_inputs(model, t.pos_tokens, mask, cfg.position)  # [3, n, L, H, d_head]
        i_neg = head_inputs(model, t.neg_tokens, mask, cfg.position)
        per_x = []
        for x in range(3):
            sae, scale = train_code_sae(torch.cat([i_pos[x][tp], i_neg[x][tn]]).reshape(-1, i_pos.shape[-1]), cfg, lam)
            rp, rn = codes(sae, scale, i_pos[x]).cpu(), codes(sae, scale, i_neg[x]).cpu()
            per_x.append(edge_scores(codes_pos, codes_neg, rp, rn))
        qkv = torch.stack(per_x)
        edges = qkv.amax(0)
    else:
        edges = edge_scores(codes_pos, codes_neg) if cfg.edges else torch.zeros(L, H, L, H)
    return DiscreteSAEResult(nodes, edges, codes_pos, codes_neg, qkv)
