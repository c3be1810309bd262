"""Train per-layer transcoders: the MLP's input in, the MLP's output out, all layers from one model pass.

    tokens -> model forward, capture blocks.L.ln2.hook_normalized and blocks.L.hook_mlp_out for every L
    (interp.activations, float16 shards) -> `fit_transcoder` per layer -> SAELens transcoder directory

Why a trainer of our own: SAELens 6.54 loads transcoders (`Transcoder`, `SkipTranscoder`,
`JumpReLUTranscoder`, `JumpReLUSkipTranscoder`) but cannot train them (SAELens issue #182: its
`SAETrainer` / `TrainingSAE` reconstruct their own input; there is no training class whose target
is another hook). So `fit_transcoder` is the smallest loop that fits, reusing SAELens' pieces where
they exist: its `TopK` activation and its JumpReLU / step straight-through estimators
(`sae_lens.saes.jumprelu_sae.JumpReLU`, `Step`, Rajamanoharan et al. 2024), and the result is one
of SAELens' own inference classes (`interp.transcoders.io`). Training is ``tokens // batch_size``
steps of Adam on

    x = ln2.hook_normalized (the MLP input before LayerNorm's affine weights),  y = s * hook_mlp_out
    f = act(x W_enc + b_enc),  y_hat = f W_dec + b_dec  (+ x W_skip^T with --skip)
    L = E ||y - y_hat||^2 / E ||y - E y||^2  +  [jumprelu] l0_coef * E ||f||_0   (step STE for the threshold)

with ``s = sqrt(d_out) / E||hook_mlp_out||`` (targets scaled to a common size, folded back into
W_dec, b_dec and W_skip when saving), the L0 coefficient warmed up linearly over the first 5% of
steps, the learning rate decayed linearly to 0 over the last 20%, and decoder rows kept at unit
norm for TopK (as sparsify does). The inputs need no scaling: LayerNorm's output has
``||x|| = sqrt(d_in)`` already.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from interp.errors import InterpError
from interp.transcoders.config import TranscoderTrainConfig

log = logging.getLogger(__name__)

NORM_BATCHES = 8  # batches used to estimate the target scale and the decoder bias
CURVE_EVERY = 20  # steps between training-curve points
WARMUP_L0 = 0.05  # fraction of steps over which the L0 coefficient ramps up
DECAY_FRAC = 0.2  # fraction of final steps with linear lr decay to 0


class _TrainingTranscoder(torch.nn.Module):
    """The trainable parameters, in SAELens' transcoder layout (W_enc [d_in, d_sae], W_dec
    [d_sae, d_out], W_skip [d_out, d_in], threshold [d_sae])."""

    def __init__(self, cfg: TranscoderTrainConfig, d_in: int, d_out: int):
        super().__init__()
        g = torch.Generator().manual_seed(cfg.seed)
        self.cfg = cfg
        self.W_enc = torch.nn.Parameter(torch.randn(d_in, cfg.d_sae, generator=g) / d_in ** 0.5)
        self.b_enc = torch.nn.Parameter(torch.zeros(cfg.d_sae))
        w_dec = torch.randn(cfg.d_sae, d_out, generator=g)
        self.W_dec = torch.nn.Parameter(w_dec / w_dec.norm(dim=-1, keepdim=True) * 0.1)
        self.b_dec = torch.nn.Parameter(torch.zeros(d_out))
        self.W_skip = torch.nn.Parameter(torch.zeros(d_out, d_in)) if cfg.skip else None
        self.threshold = torch.nn.Parameter(torch.full((cfg.d_sae,), cfg.init_threshold)) if cfg.arch == "jumprelu" else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(y_hat, f, L0 surrogate per row) for a batch x [B, d_in]."""
        from sae_lens.saes.jumprelu_sae import JumpReLU, Step
        from sae_lens.saes.topk_sae import TopK

        pre = x @ self.W_enc + self.b_enc
        if self.threshold is not None:
            f = JumpReLU.apply(pre, self.threshold, self.cfg.bandwidth, False)
            l0 = Step.apply(pre, self.threshold, self.cfg.bandwidth, False).sum(-1)
        else:
            f = TopK(self.cfg.k)(pre)
            l0 = (f != 0).float().sum(-1)
        y_hat = f @ self.W_dec + self.b_dec
        if self.W_skip is not None:
            y_hat = y_hat + x @ self.W_skip.T
        return y_hat, f, l0


@dataclass
class FitResult:
    """A trained transcoder (SAELens inference class, float32) and how its training went."""

    transcoder: object
    curve: list[dict]  # [{step, tokens, loss, fvu, l0}, ...] on training batches
    steps: int
    seconds: float


def _lr_at(step: int, steps: int, lr: float) -> float:
    start = int(steps * (1 - DECAY_FRAC))
    return lr if step < start else lr * max(0.0, (steps - step) / max(1, steps - start))


def fit_transcoder(cfg: TranscoderTrainConfig, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], metadata: dict,
                   device: str | torch.device = "cpu", progress: Callable[[int, int], None] | None = None) -> FitResult:
    """Train one transcoder on paired batches (x [B, d_in], y [B, d_out]) and return SAELens' inference
    transcoder (see the module docstring for the objective)."""
    device = torch.device(device)
    first = [b for _, b in zip(range(NORM_BATCHES), batches)]
    if not first:
        raise InterpError("no training activations")
    xs, ys = torch.cat([x for x, _ in first]).float(), torch.cat([y for _, y in first]).float()
    if not (torch.isfinite(xs).all() and torch.isfinite(ys).all()):
        raise InterpError(f"non-finite (NaN/inf) activations at layer {cfg.layer}; stopping")
    d_in, d_out = xs.shape[1], ys.shape[1]
    scale = float(d_out ** 0.5 / ys.norm(dim=-1).mean().clamp_min(1e-8))
    var = float((ys * scale - (ys * scale).mean(0)).pow(2).sum(-1).mean().clamp_min(1e-8))
    torch.manual_seed(cfg.seed)
    net = _TrainingTranscoder(cfg, d_in, d_out).to(device)
    with torch.no_grad():
        net.b_dec.copy_((ys * scale).mean(0))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps, curve = cfg.steps, []
    pending = iter(first)
    t0 = time.time()
    bar = tqdm(total=steps, desc=f"train {cfg.arch} transcoder L{cfg.layer}", unit="step", leave=False)
    for step in range(steps):
        pair = next(pending, None) or next(batches, None)
        if pair is None:
            raise InterpError(f"ran out of activations at step {step}")
        x, y = pair[0].to(device, torch.float32), pair[1].to(device, torch.float32) * scale
        y_hat, f, l0 = net(x)
        mse = (y_hat - y).pow(2).sum(-1).mean() / var
        coef = cfg.l0_coef * min(1.0, (step + 1) / max(1, WARMUP_L0 * steps)) if net.threshold is not None else 0.0
        loss = mse + coef * l0.mean()
        if not torch.isfinite(loss):
            raise InterpError(f"training diverged: non-finite loss at step {step} (layer {cfg.layer}); lower --lr")
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, steps, cfg.lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            if net.threshold is not None:
                net.threshold.clamp_(min=0.0)
            else:  # unit-norm decoder rows: TopK has no penalty that a larger decoder could dodge, but keeps scales fixed
                net.W_dec.div_(net.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))
        if step % CURVE_EVERY == 0 or step == steps - 1:
            curve.append({"step": step, "tokens": (step + 1) * len(x), "loss": round(loss.item(), 5),
                          "fvu": round(mse.item(), 5), "l0": round((f != 0).float().sum(-1).mean().item(), 3)})
            bar.set_postfix(fvu=f"{curve[-1]['fvu']:.3f}", l0=f"{curve[-1]['l0']:.1f}")
        bar.update(1)
        if progress is not None:
            progress(step + 1, steps)
    bar.close()
    return FitResult(to_saelens(net, scale, metadata), curve, steps, time.time() - t0)


@torch.no_grad()
def to_saelens(net: _TrainingTranscoder, scale: float, metadata: dict):
    """SAELens' inference transcoder with `net`'s weights, the target scale folded back in."""
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.transcoder import (JumpReLUSkipTranscoder, JumpReLUSkipTranscoderConfig, JumpReLUTranscoder,
                                          JumpReLUTranscoderConfig)

    from interp.transcoders.io import register

    cfg = net.cfg
    d_in, d_sae = net.W_enc.shape
    d_out = net.W_dec.shape[1]
    common = dict(d_in=d_in, d_sae=d_sae, d_out=d_out, dtype="float32", device="cpu", apply_b_dec_to_input=False,
                  normalize_activations="none", metadata=SAEMetadata(**metadata))
    if cfg.arch == "jumprelu":
        cls, ccls = (JumpReLUSkipTranscoder, JumpReLUSkipTranscoderConfig) if cfg.skip else (JumpReLUTranscoder, JumpReLUTranscoderConfig)
        tc = cls(ccls(**common))
    else:
        cls = register()[cfg.architecture]
        tc = cls(cls.from_dict({"architecture": cfg.architecture, **common, "metadata": metadata, "k": cfg.k}).cfg)
    state = {"W_enc": net.W_enc, "b_enc": net.b_enc, "W_dec": net.W_dec / scale, "b_dec": net.b_dec / scale}
    if cfg.skip:
        state["W_skip"] = net.W_skip / scale
    if cfg.arch == "jumprelu":
        state["threshold"] = net.threshold
    tc.load_state_dict({k: v.detach().cpu().clone() for k, v in state.items()})
    return tc.eval()


def paired_batches(store, in_hook: str, out_hook: str, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches of (input, target) rows of the same tokens from an `ActivationStore`
    (position 0, the BOS token, is left out as SAELens does); one shard pair in memory at a time."""
    epoch = 0
    seq = store.manifest.seq_len
    while True:
        g = torch.Generator().manual_seed(seed + 1000 * epoch)
        for i in torch.randperm(store.n_shards, generator=g).tolist():
            a, b = store.shard(in_hook, i), store.shard(out_hook, i)
            a = a.view(-1, seq, a.shape[-1])[:, 1:].reshape(-1, a.shape[-1])
            b = b.view(-1, seq, b.shape[-1])[:, 1:].reshape(-1, b.shape[-1])
            perm = torch.randperm(len(a), generator=g)
            for j in range(0, len(a) - batch_size + 1, batch_size):
                idx = perm[j : j + batch_size]
                yield a[idx].float(), b[idx].float()
        epoch += 1


@dataclass
class TrainResult:
    """One transcoder trained by `train_transcoders`."""

    out_dir: Path
    config: TranscoderTrainConfig
    metrics: dict
    train_seconds: float
    curve: list = field(default_factory=list)


def train_transcoders(cfgs: list[TranscoderTrainConfig], out_dirs: list[str | Path], acts_dir: str | Path | None = None,
                      act_tokens: int | None = None, eval_tokens: int = 16384, model=None, overwrite: bool = False,
                      keep_acts: bool = False, device: str | None = None, allow_package: bool = False,
                      on_result: Callable[[TrainResult], None] | None = None) -> tuple[list[TrainResult], float]:
    """Train one transcoder per config from ONE model pass (every layer's input and output hooks are
    collected together by `interp.activations.collect_activations`), evaluate each
    (`interp.transcoders.eval`), save each in SAELens' format. Output directories, layers and disk
    space are checked before the model runs. Returns the results and the collection time."""
    from interp.activations import ActivationStore, CollectConfig, collect_activations
    from interp.device import device_of
    from interp.io import check_output_dir, model_id, user_data_dir
    from interp.models import load_model
    from interp.sae.io import model_loading_info
    from interp.transcoders.eval import evaluate_transcoder
    from interp.transcoders.io import CFG, save_transcoder

    if not cfgs or len(cfgs) != len(out_dirs):
        raise InterpError("give one output directory per transcoder config")
    if len({c.model for c in cfgs}) != 1:
        raise InterpError("transcoders trained from one activation pass must share a model")
    if len({str(Path(o).resolve()) for o in out_dirs}) != len(out_dirs):
        raise InterpError("two transcoders would be written to the same output directory")
    for o in out_dirs:
        check_output_dir(o, marker=CFG, overwrite=overwrite, what="transcoder output directory", allow_package=allow_package)
    model_name = cfgs[0].model
    model = model if model is not None else load_model(model_name, **({"device": device} if device else {}))
    n_layers = model.cfg.n_layers
    bad = [c.layer for c in cfgs if c.layer >= n_layers]
    if bad:
        raise InterpError(f"--layers {bad[0]}: the model has {n_layers} layers (0-{n_layers - 1})")
    dev = device_of(model)
    hooks = list(dict.fromkeys(h for c in cfgs for h in (c.in_hook, c.out_hook)))
    act_tokens = act_tokens or max(c.tokens for c in cfgs)
    own = acts_dir is None
    key = hashlib.sha256(json.dumps([model_name, hooks, act_tokens]).encode()).hexdigest()[:10]
    acts = Path(acts_dir) if acts_dir else user_data_dir("transcoder-acts", f"{model_id(model_name)}-{key}")
    need = act_tokens * len(hooks) * model.cfg.d_model * 2
    root = next(p for p in [acts, *acts.parents] if p.exists())
    if need > shutil.disk_usage(root).free:
        raise InterpError(f"collecting {act_tokens} tokens at {len(hooks)} hooks needs about {need / 2**30:.1f} GiB in {acts}; "
                          "lower --act-tokens")
    t0 = time.time()
    ccfg = CollectConfig(hooks=hooks, n_tokens=act_tokens, dtype="float16")
    collect_activations(model, ccfg, acts, model_name=model_name, overwrite=own)
    collect_s = time.time() - t0
    store = ActivationStore(acts)
    loading = model_loading_info(model)
    results = []
    try:
        for c, o in zip(cfgs, out_dirs):
            meta = {"model_name": model_name, "hook_name": c.in_hook, "hook_name_out": c.out_hook, "hook_layer": c.layer,
                    "hook_head_index": None, "context_size": store.manifest.seq_len, "prepend_bos": True,
                    "dataset_path": store.manifest.corpus, "model_from_pretrained_kwargs": loading.get("processing") or {},
                    "interp_train_config": c.to_dict()}
            res = fit_transcoder(c, paired_batches(store, c.in_hook, c.out_hook, c.batch_size, c.seed), meta, device=dev)
            metrics = evaluate_transcoder(res.transcoder, model, n_tokens=eval_tokens)
            extra = {"train_tokens": res.steps * c.batch_size, "train_seconds": round(res.seconds, 1),
                     "activation_tokens": store.manifest.n_tokens, "arch": c.architecture, "config": c.to_dict(), "curve": res.curve}
            save_transcoder(res.transcoder, o, metrics={**metrics, **extra}, overwrite=overwrite, allow_package=allow_package)
            log.info("%s: fvu %.4f, ce_loss_score %.4f, l0 %.1f", o, metrics["fvu"], metrics["ce_loss_score"], metrics["l0"])
            results.append(TrainResult(Path(o), c, metrics, res.seconds, res.curve))
            if on_result is not None:
                on_result(results[-1])
    finally:
        if own and not keep_acts:
            shutil.rmtree(acts, ignore_errors=True)
    return results, collect_s
