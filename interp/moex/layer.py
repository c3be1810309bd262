"""MLP layers that drop into a TransformerLens block: dense (GELU / ReLU), Switch-style MoE, MoE-X.

MoE-X (Yang et al., ICML 2025) rewrites a mixture of E experts as one wide sparse MLP:

    z(x)   = concat_i [ g_i(x) * act(W_enc^i x + b_enc^i) ]        width E * D, zero outside chosen experts
    out(x) = z(x) @ concat_i W_dec^i + b_dec = sum_{i chosen} g_i(x) W_dec^i act(W_enc^i x + b_enc^i) + b_dec

with ReLU experts and a *sparsity-aware router*: it estimates how many units of expert i would be
active without running the expert. Treating the rows of W_enc^i as draws with per-input-dimension
mean mu^i_d and variance s^i_d (statistics over the D units), a pre-activation is approximately
h ~ N(mu^i . x + mean(b^i), (s^i . x^2) + var(b^i)), so

    E[#active units of expert i] = D * P(h > 0) = D * Phi(m_i(x)),   m_i(x) = mean / std   (a z-score).

The router keeps the top-k experts with the smallest m_i (the sparsest) and gates them with a
softmax over -m_i of the chosen ones. Cost: two [d_model, E] products per token instead of E
[d_model, D] products. The Switch-style baseline uses a learned linear router with a softmax;
both routers can be combined with either activation (the 2x2 ablation).

z is exposed as the hook point ``hook_moex_z`` (so MoE-X units are a feature source like SAE
latents); the gates are ``hook_gates`` ([..., E], zero outside the chosen experts). For the dense
MLPs the hidden units are ``hook_post`` as in TransformerLens. An optional Switch load-balancing
loss (E * sum_i f_i P_i) is left in ``module.aux_loss`` after each forward for the training loop.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from jaxtyping import Float
from transformer_lens.hook_points import HookPoint

from interp.errors import InterpError

ARCHS = ("dense-gelu", "dense-relu", "switch", "moex")
ACTS = {"gelu": F.gelu, "relu": F.relu}


@dataclass
class MoEXConfig:
    arch: str = "moex"
    """dense-gelu, dense-relu, switch (softmax router, GELU experts) or moex (sparsity router, ReLU experts)"""
    d_model: int = 128
    """input and output width"""
    d_mlp: int = 512
    """hidden width: of the dense MLP, or of ONE expert (D)"""
    n_experts: int = 1
    """E (1 for dense)"""
    top_k: int = 1
    """experts used per token (1 for dense)"""
    act: str | None = None
    """relu or gelu; None = the arch's default (moex: relu, switch: gelu)"""
    router: str | None = None
    """sparsity or softmax; None = the arch's default (moex: sparsity, switch: softmax)"""
    balance_coef: float = 0.0
    """weight of the Switch load-balancing loss (0 = off)"""

    def __post_init__(self):
        from interp.fields import check_types

        check_types(self, "of the MoE-X config")
        if max(self.d_model, self.d_mlp, self.n_experts) > 1 << 20:
            raise InterpError(f"the MoE-X config is too large (d_model {self.d_model:,}, d_mlp {self.d_mlp:,}, "
                              f"n_experts {self.n_experts:,}; each at most {1 << 20:,})")
        if self.arch not in ARCHS:
            raise InterpError(f"unknown MLP architecture {self.arch!r}; use one of {', '.join(ARCHS)}")
        if self.arch.startswith("dense"):
            if self.n_experts != 1 or self.top_k != 1:
                raise InterpError(f"{self.arch} has no experts: use n_experts=1, top_k=1")
            self.act = self.act or self.arch.split("-")[1]
            self.router = self.router or "none"
        else:
            if self.n_experts < 1 or self.top_k < 1:
                raise InterpError("n_experts and top_k must be >= 1")
            if self.top_k > self.n_experts:
                raise InterpError(f"top_k={self.top_k} is larger than the number of experts E={self.n_experts}")
            self.act = self.act or ("relu" if self.arch == "moex" else "gelu")
            self.router = self.router or ("sparsity" if self.arch == "moex" else "softmax")
            if self.router not in ("sparsity", "softmax"):
                raise InterpError(f"unknown router {self.router!r}; use sparsity or softmax")
        if self.act not in ACTS:
            raise InterpError(f"unknown activation {self.act!r}; use relu or gelu")
        if self.d_model < 1 or self.d_mlp < 1 or not 0 <= self.balance_coef < float("inf"):  # NaN fails too
            raise InterpError("d_model, d_mlp must be >= 1 and balance_coef >= 0")

    @property
    def is_moe(self) -> bool:
        return not self.arch.startswith("dense")

    def active_params(self) -> int:
        """Parameters used per token: k experts (W_enc, b_enc, W_dec) + b_dec + the router's weights."""
        per_expert = 2 * self.d_model * self.d_mlp + self.d_mlp
        router = 0 if not self.is_moe else (self.n_experts * self.d_model if self.router == "softmax" else 2 * self.n_experts * self.d_model)
        return self.top_k * per_expert + self.d_model + router

    def to_dict(self) -> dict:
        return asdict(self)


class DenseMLP(nn.Module):
    """W_out act(W_in x + b_in) + b_out, TransformerLens parameter and hook names (hook_pre, hook_post)."""

    def __init__(self, cfg: MoEXConfig):
        super().__init__()
        self.cfg = cfg
        self.W_in = nn.Parameter(torch.randn(cfg.d_model, cfg.d_mlp) / math.sqrt(cfg.d_model))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.randn(cfg.d_mlp, cfg.d_model) / math.sqrt(cfg.d_mlp))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()
        self.aux_loss = torch.zeros(())

    def forward(self, x: Float[torch.Tensor, "... d_model"]) -> Float[torch.Tensor, "... d_model"]:
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        post = self.hook_post(ACTS[self.cfg.act](pre))
        return post @ self.W_out + self.b_out


class MoEMLP(nn.Module):
    """E experts with top-k routing; the gated hidden vector z [..., E * D] is `hook_moex_z`.

    Parameters are stacked: W_enc [E, d_model, D], b_enc [E, D], W_dec [E, D, d_model], b_dec [d_model],
    and for the softmax router W_router [d_model, E]. Only the chosen experts are computed
    (tokens are gathered per expert). z itself is only materialised when a hook is attached to
    `hook_moex_z`; if that hook edits z, the output is recomputed from the edited z.
    """

    def __init__(self, cfg: MoEXConfig):
        super().__init__()
        if not cfg.is_moe:
            raise InterpError(f"MoEMLP needs arch switch or moex, got {cfg.arch}")
        self.cfg = cfg
        E, D, d = cfg.n_experts, cfg.d_mlp, cfg.d_model
        self.W_enc = nn.Parameter(torch.randn(E, d, D) / math.sqrt(d))
        self.b_enc = nn.Parameter(torch.zeros(E, D))
        self.W_dec = nn.Parameter(torch.randn(E, D, d) / math.sqrt(D * cfg.top_k))
        self.b_dec = nn.Parameter(torch.zeros(d))
        if cfg.router == "softmax":
            self.W_router = nn.Parameter(torch.randn(d, E) * 0.02)
        self.hook_router_scores = HookPoint()  # [..., E] higher = preferred
        self.hook_gates = HookPoint()  # [..., E] zero outside the chosen experts
        self.hook_moex_z = HookPoint()  # [..., E * D]
        self.aux_loss = torch.zeros(())

    def sparsity_scores(self, x: Float[torch.Tensor, "N d_model"]) -> Float[torch.Tensor, "N E"]:
        """z-score m_i(x) of a unit's pre-activation in expert i; D * Phi(m_i) = expected active units."""
        mu = self.W_enc.mean(-1)  # [E, d]  (mean over the D units, per input dimension)
        var = self.W_enc.var(-1, unbiased=False)  # [E, d]
        mean = x @ mu.T + self.b_enc.mean(-1)  # [N, E]
        std = torch.sqrt((x * x) @ var.T + self.b_enc.var(-1, unbiased=False) + 1e-6)
        return mean / std

    def expected_active(self, x: Float[torch.Tensor, "N d_model"]) -> Float[torch.Tensor, "N E"]:
        """The router's estimate of how many of each expert's D units are > 0."""
        return self.cfg.d_mlp * torch.special.ndtr(self.sparsity_scores(x))

    def route(self, x: Float[torch.Tensor, "N d_model"]):
        """-> (scores [N, E] (higher = preferred), top-k indices [N, k], gates [N, k] summing to 1)."""
        if self.cfg.router == "sparsity":
            scores = -self.sparsity_scores(x)
        else:
            scores = x @ self.W_router
        top = scores.topk(self.cfg.top_k, dim=-1)
        if self.cfg.router == "softmax" and self.cfg.top_k == 1:
            gates = scores.softmax(-1).gather(-1, top.indices)  # Switch: the raw probability
        else:
            gates = top.values.softmax(-1)
        return scores, top.indices, gates

    def forward(self, x: Float[torch.Tensor, "... d_model"]) -> Float[torch.Tensor, "... d_model"]:
        cfg = self.cfg
        E, D = cfg.n_experts, cfg.d_mlp
        lead = x.shape[:-1]
        x_Nd = x.reshape(-1, x.shape[-1])
        N = x_Nd.shape[0]
        scores_NE, idx_Nk, gates_Nk = self.route(x_Nd)
        scores_NE = self.hook_router_scores(scores_NE.reshape(*lead, E)).reshape(N, E)
        gate_NE = torch.zeros(N, E, dtype=x.dtype, device=x.device).scatter(1, idx_Nk, gates_Nk)
        gate_NE = self.hook_gates(gate_NE.reshape(*lead, E)).reshape(N, E)
        act = ACTS[cfg.act]
        out_Nd = x_Nd.new_zeros(N, x_Nd.shape[1])
        chosen_NE = gate_NE != 0
        toks, experts, hs = [], [], []
        for e in range(E):
            tok = chosen_NE[:, e].nonzero(as_tuple=True)[0]
            if tok.numel() == 0:
                continue
            h = act(x_Nd[tok] @ self.W_enc[e] + self.b_enc[e]) * gate_NE[tok, e, None]
            out_Nd = out_Nd.index_add(0, tok, h @ self.W_dec[e])
            toks.append(tok), experts.append(torch.full_like(tok, e)), hs.append(h)
        if self.hook_moex_z._forward_hooks:  # build the wide z only when someone looks at it
            z_NED = x_Nd.new_zeros(N, E, D).index_put((torch.cat(toks), torch.cat(experts)), torch.cat(hs))
            z = z_NED.reshape(*lead, E * D)
            z_hooked = self.hook_moex_z(z)
            if z_hooked is not z:  # a hook edited z: the output must follow the edit
                out_Nd = z_hooked.reshape(N, E * D) @ self.W_dec.reshape(E * D, -1)
        if cfg.balance_coef > 0 and self.training:
            frac_E = chosen_NE.float().mean(0) / cfg.top_k
            prob_E = scores_NE.softmax(-1).mean(0)
            self.aux_loss = cfg.balance_coef * E * (frac_E * prob_E).sum()
        else:
            self.aux_loss = torch.zeros((), device=x.device)
        return (out_Nd + self.b_dec).reshape(*lead, -1)


def make_mlp(cfg: MoEXConfig) -> nn.Module:
    return MoEMLP(cfg) if cfg.is_moe else DenseMLP(cfg)


def hidden_hook_name(cfg: MoEXConfig, layer: int) -> str:
    """The hook whose activations are this layer's hidden units (the feature source)."""
    return f"blocks.{layer}.mlp.hook_moex_z" if cfg.is_moe else f"blocks.{layer}.mlp.hook_post"


def replace_mlps(model, cfg: MoEXConfig, layers: list[int] | None = None):
    """Swap the MLP of each block in `layers` (default: all) for `make_mlp(cfg)` (`interp.models.swap_mlp`:
    the layer's hook points become ``blocks.L.mlp.hook_*``).

    The model is changed in place (this builds a model; it is not an intervention) and returned.
    """
    from interp.models import swap_mlp

    if cfg.d_model != model.cfg.d_model:
        raise InterpError(f"MLP d_model {cfg.d_model} does not match the model's d_model {model.cfg.d_model}")
    layers = list(range(model.cfg.n_layers)) if layers is None else layers
    for layer in layers:
        if not 0 <= layer < model.cfg.n_layers:
            raise InterpError(f"layer {layer} out of range (model has {model.cfg.n_layers} layers)")
        swap_mlp(model, layer, make_mlp(cfg).to(model.cfg.device))
    return model
