"""How well transcoders stand in for the MLPs they replace, on held-out text (BOS positions excluded).

Per transcoder (layer L), with x = ``blocks.L.ln2.hook_normalized`` and y = ``blocks.L.hook_mlp_out``:

* ``fvu`` = E||y - T(x)||^2 / E||y - E y||^2 (pooled over tokens; 1 - explained variance);
* ``l0``: mean active latents per token; ``frac_alive``: latents that fire at least once;
* ``ce_loss_score`` = (CE_zero - CE_T) / (CE_zero - CE_clean): the next-token loss recovered when
  that one MLP's output is replaced by T(x), against zero-ablating it (SAEBench's definition);
* ``kl_div_score`` = (KL_zero - KL_T) / KL_zero with KL(clean || patched).

For a whole set (`evaluate_set`): the same CE / KL scores with EVERY MLP replaced at once by its
transcoder (each transcoder reading the replaced model's own activations), against all MLPs zeroed.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from interp.errors import InterpError


def _replace_hooks(tcs: dict[int, object], zero: bool = False) -> list[tuple[str, Callable]]:
    """Hooks that replace ``blocks.L.hook_mlp_out`` by T_L(``blocks.L.ln2.hook_normalized``) (or zero)."""
    store: dict[int, torch.Tensor] = {}
    hooks = []
    for layer, tc in tcs.items():
        def keep(act, hook, layer=layer):
            store[layer] = act

        def put(act, hook, layer=layer, tc=tc):
            if zero:
                return torch.zeros_like(act)
            return tc(store.pop(layer).to(torch.float32)).to(act.dtype)

        hooks += [(f"blocks.{layer}.ln2.hook_normalized", keep), (f"blocks.{layer}.hook_mlp_out", put)]
    return hooks


def _loss_and_logp(model, toks: torch.Tensor, hooks) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed next-token CE over non-BOS targets, log-probs [B, P, V]) under `hooks`."""
    from interp.hooks import intervene

    with torch.no_grad(), intervene(model, hooks):
        logits = model(toks).float()
    logp = logits.log_softmax(-1)
    ce = -logp[:, :-1].gather(-1, toks[:, 1:, None]).squeeze(-1)
    return ce.sum(), logp


def _scores(model, toks: torch.Tensor, tcs: dict[int, object], batch_rows: int) -> dict[str, float]:
    ce = {"clean": 0.0, "tc": 0.0, "zero": 0.0}
    kl = {"tc": 0.0, "zero": 0.0}
    n_ce = n_kl = 0
    for i in range(0, len(toks), batch_rows):
        t = toks[i : i + batch_rows]
        c_clean, lp_clean = _loss_and_logp(model, t, [])
        c_tc, lp_tc = _loss_and_logp(model, t, _replace_hooks(tcs))
        c_zero, lp_zero = _loss_and_logp(model, t, _replace_hooks(tcs, zero=True))
        ce["clean"] += c_clean.item()
        ce["tc"] += c_tc.item()
        ce["zero"] += c_zero.item()
        p = lp_clean[:, 1:].exp()  # KL(clean || patched) per position, BOS left out
        kl["tc"] += (p * (lp_clean[:, 1:] - lp_tc[:, 1:])).sum().item()
        kl["zero"] += (p * (lp_clean[:, 1:] - lp_zero[:, 1:])).sum().item()
        n_ce += t[:, 1:].numel()
        n_kl += t[:, 1:].numel()
    ce = {k: v / n_ce for k, v in ce.items()}
    kl = {k: v / n_kl for k, v in kl.items()}
    gap = ce["zero"] - ce["clean"]
    return {"ce_loss_score": (ce["zero"] - ce["tc"]) / gap if gap else float("nan"),
            "kl_div_score": (kl["zero"] - kl["tc"]) / kl["zero"] if kl["zero"] else float("nan"),
            "ce_loss_without_tc": ce["clean"], "ce_loss_with_tc": ce["tc"], "ce_loss_with_ablation": ce["zero"],
            "kl_div_with_tc": kl["tc"], "kl_div_with_ablation": kl["zero"]}


@torch.no_grad()
def evaluate_transcoder(tc, model, n_tokens: int = 16384, batch_rows: int = 16, tokens: torch.Tensor | None = None) -> dict:
    """The per-layer metrics of the module docstring for one transcoder on `model`."""
    from interp.hooks import capture
    from interp.sae.eval import eval_tokens
    from interp.transcoders.io import transcoder_layer

    layer = transcoder_layer(tc)
    if layer >= model.cfg.n_layers:
        raise InterpError(f"transcoder layer {layer} but the model has {model.cfg.n_layers} layers")
    toks = tokens if tokens is not None else eval_tokens(model, n_tokens)
    toks = toks.to(next(model.parameters()).device)
    tc = tc.to(toks.device)
    x_in, y_out = f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.hook_mlp_out"
    err = tot = 0.0
    s1 = s2 = None
    n = 0
    l0 = 0.0
    fired = torch.zeros(tc.cfg.d_sae, dtype=torch.bool, device=toks.device)
    for i in range(0, len(toks), batch_rows):
        with capture(model, [x_in, y_out]) as acts:
            model(toks[i : i + batch_rows], stop_at_layer=layer + 1)
        x = acts[x_in][:, 1:].reshape(-1, acts[x_in].shape[-1]).float()
        y = acts[y_out][:, 1:].reshape(-1, acts[y_out].shape[-1]).float()
        y_hat, f = tc.forward_with_activations(x)
        err += (y - y_hat).pow(2).sum().item()
        s1 = y.sum(0) if s1 is None else s1 + y.sum(0)
        s2 = y.pow(2).sum() if s2 is None else s2 + y.pow(2).sum()
        n += len(y)
        l0 += (f != 0).float().sum().item()
        fired |= (f != 0).any(0)
    var = (s2 - s1.pow(2).sum() / n).item()
    out = {"fvu": err / var if var else float("nan"), "l0": l0 / n, "frac_alive": fired.float().mean().item(),
           "layer": layer, "eval_tokens": n}
    out.update(_scores(model, toks, {layer: tc}, batch_rows))
    return out


@torch.no_grad()
def evaluate_set(tcs: dict[int, object], model, n_tokens: int = 16384, batch_rows: int = 16,
                 tokens: torch.Tensor | None = None) -> dict:
    """CE / KL scores with every MLP of `tcs` replaced at once (module docstring)."""
    from interp.sae.eval import eval_tokens

    toks = tokens if tokens is not None else eval_tokens(model, n_tokens)
    toks = toks.to(next(model.parameters()).device)
    return {"layers": sorted(tcs), **_scores(model, toks, tcs, batch_rows)}
