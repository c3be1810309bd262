"""Train SAEs with SAELens, fed from our activation store (one model pass for many SAEs).

    cached activations (interp.activations) -> SAELens TrainingSAE + SAETrainer.step -> SAE dir

`fit_sae` is the training loop, top to bottom. The SAE architectures, their losses, the
optimizer / lr schedule, dead-latent tracking, activation normalisation and checkpoint state
are all SAELens' own (`TrainingSAE` subclasses, `SAETrainer.step`, `ActivationScaler`,
`SAETrainer.save_checkpoint` / `load_trainer_state`); this module only feeds batches from disk
(or from a tensor) and decides when to log and checkpoint. Training is
``tokens // batch_size`` steps of Adam on

    L = ||x - x_hat||^2 + (architecture's sparsity / auxiliary loss)

with activations scaled so that E||x|| = sqrt(d_in) (SAELens "expected_average_only_in"; the
factor is folded into the saved weights). A run killed mid-way resumes from
``<out>.partial/ckpt`` at the step it last saved.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from interp import distributed as dist
from interp.alloc import tune_malloc
from interp.distributed import DataParallelSync, Parallel
from interp.errors import InterpError
from interp.sae.config import SAETrainConfig
from interp.sae.io import save_sae, to_inference
from interp.sae.optim import normalize_decoder_rows, project_decoder_grad, to_eval_weights, use_signum

log = logging.getLogger(__name__)

CURVE_EVERY = 10  # steps between training-curve points
NORM_BATCHES = 8  # batches used to estimate the activation scaling factor


@functools.cache
def _sparse_topk_class():
    """SAELens' `TopKTrainingSAE` with a decoder that reads only the k active latents of a row.

    SAELens decodes TopK codes with a dense [batch, d_sae] @ [d_sae, d_in] product, 97% of
    whose terms are zero at k=32 of 1024. Its own sparse switch (`use_sparse_activations`)
    builds a COO tensor whose backward fails on the CPU ("Could not run 'aten::view' with
    arguments from the 'SparseCPU' backend", SAELens 6.54 / torch 2.13). So this subclass keeps
    the top-k values and indices from the encoder and decodes with `F.embedding_bag` (a
    weighted sum of k decoder rows per token), which has fast forward and backward kernels.
    Everything else (init, losses, AuxK, saving) is SAELens' class; the math is the same, and
    `tests/test_sae.py` checks the loss and every gradient against the dense class."""
    import sae_lens as sl
    import torch.nn.functional as F

    class SparseDecodeTopKTrainingSAE(sl.TopKTrainingSAE):
        _active: tuple | None = None  # (dense codes returned by encode, top-k values, top-k indices)

        def encode_with_hidden_pre(self, x):
            if self.hook_sae_acts_post._forward_hooks:
                return super().encode_with_hidden_pre(x)
            sae_in = self.process_sae_in(x)
            hidden_pre = self.hook_sae_acts_pre(sae_in @ self.W_enc + self.b_enc)
            if self.cfg.rescale_acts_by_decoder_norm:
                hidden_pre = hidden_pre * self.W_dec.norm(dim=-1)
            vals, idx = torch.topk(hidden_pre, k=self.cfg.k, dim=-1, sorted=False)
            vals = vals.relu()
            with torch.no_grad():  # dense codes for SAELens' firing statistics; gradients flow through `vals`
                codes = torch.zeros_like(hidden_pre).scatter_(-1, idx, vals)
            self._active = (codes, vals, idx)
            return codes, hidden_pre

        def decode(self, feature_acts):
            act, self._active = self._active, None
            if act is None or act[0] is not feature_acts or feature_acts.dim() != 2:
                return super().decode(feature_acts)
            _, vals, idx = act
            if self.cfg.rescale_acts_by_decoder_norm:  # SAELens' act_times_W_dec, on the k active latents only
                vals = vals / self.W_dec.norm(dim=-1)[idx]
            out = F.embedding_bag(idx, self.W_dec, per_sample_weights=vals, mode="sum") + self.b_dec
            out = self.run_time_activation_norm_fn_out(self.hook_sae_recons(out))
            return self.reshape_fn_out(out, self.d_head)

    return SparseDecodeTopKTrainingSAE


def make_training_sae(cfg: SAETrainConfig, d_in: int, metadata: dict):
    """A fresh SAELens training SAE for `cfg` (seeded)."""
    import sae_lens as sl
    from sae_lens.saes.sae import SAEMetadata

    common = dict(d_in=d_in, d_sae=cfg.d_sae, normalize_activations="expected_average_only_in" if cfg.normalize else "none",
                  metadata=SAEMetadata(**metadata))
    warm = max(1, cfg.steps // 20)  # sparsity-penalty warm-up for the L1/L0 architectures
    # BatchTopK's inference threshold is an EMA of each batch's smallest kept activation; SAELens'
    # default rate (0.01) needs thousands of steps, so short CPU runs use a faster one.
    thr_lr = min(0.2, max(0.01, 5.0 / cfg.steps))
    if cfg.arch == "topk":
        # unit_norm_decoder: sparsify keeps ||W_dec row|| = 1 explicitly, so SAELens' reparametrisation
        # (codes times ||W_dec row||) is switched off; the saved SAE is a plain SAELens TopK SAE.
        sae_cfg = sl.TopKTrainingSAEConfig(k=cfg.k, aux_loss_coefficient=cfg.aux_coef,
                                           rescale_acts_by_decoder_norm=not cfg.unit_norm_decoder, **common)
    elif cfg.arch == "batchtopk":
        sae_cfg = sl.BatchTopKTrainingSAEConfig(k=float(cfg.k), aux_loss_coefficient=cfg.aux_coef, topk_threshold_lr=thr_lr, **common)
    elif cfg.arch == "matryoshka":
        widths = sorted({max(cfg.k, cfg.d_sae // 8), max(cfg.k, cfg.d_sae // 4), max(cfg.k, cfg.d_sae // 2), cfg.d_sae})
        sae_cfg = sl.MatryoshkaBatchTopKTrainingSAEConfig(k=float(cfg.k), matryoshka_widths=widths,
                                                          aux_loss_coefficient=cfg.aux_coef, topk_threshold_lr=thr_lr, **common)
    elif cfg.arch == "standard":
        sae_cfg = sl.StandardTrainingSAEConfig(l1_coefficient=cfg.l1, l1_warm_up_steps=warm, **common)
    elif cfg.arch == "gated":
        sae_cfg = sl.GatedTrainingSAEConfig(l1_coefficient=cfg.l1, l1_warm_up_steps=warm, **common)
    else:  # jumprelu
        sae_cfg = sl.JumpReLUTrainingSAEConfig(l0_coefficient=cfg.l1, l0_warm_up_steps=warm, **common)
    torch.manual_seed(cfg.seed)
    cls = {"topk": _sparse_topk_class(), "batchtopk": sl.BatchTopKTrainingSAE, "matryoshka": sl.MatryoshkaBatchTopKTrainingSAE,
           "standard": sl.StandardTrainingSAE, "gated": sl.GatedTrainingSAE, "jumprelu": sl.JumpReLUTrainingSAE}[cfg.arch]
    return cls(sae_cfg)


@dataclass
class FitResult:
    """A trained SAELens training SAE and how its training went."""

    sae: object  # sae_lens TrainingSAE (activation scaling already folded in)
    curve: list[dict]  # [{step, tokens, loss, mse, l0, explained_variance}, ...] on training batches
    steps: int
    seconds: float  # wall time of the steps run in this call
    resumed_from: int  # 0, or the checkpoint step this run continued from


KEEP_CHECKPOINTS = 2  # the newest two are kept, so a checkpoint damaged mid-write still leaves one good one
CKPT_MANIFEST = "manifest.json"


def _save_checkpoint(trainer, ckpt_root: Path, state: dict) -> None:
    """SAELens' own checkpoint (weights, optimizer, scheduler, scaler, sparsity) + our state, in
    ``ckpt_root/step_NNNNNNNN`` (built beside, renamed into place), then a manifest with the sha256
    of every file, written last; older checkpoints beyond the newest `KEEP_CHECKPOINTS` are removed."""
    from interp.io import atomic_dir, atomic_write_json, sha256_file

    ckpt_root.mkdir(parents=True, exist_ok=True)
    out = ckpt_root / f"step_{state['step']:08d}"
    with atomic_dir(out, overwrite=True, marker=CKPT_MANIFEST) as tmp:
        trainer.save_checkpoint(checkpoint_name=tmp.name, base_path=tmp.parent)
        (tmp / "state.json").write_text(json.dumps(state))
        files = {f.name: sha256_file(f) for f in sorted(tmp.iterdir()) if f.is_file()}
        atomic_write_json(tmp / CKPT_MANIFEST, {"step": state["step"], "sha256": files})
    for old in _checkpoints(ckpt_root)[KEEP_CHECKPOINTS:]:
        shutil.rmtree(old, ignore_errors=True)


def _checkpoints(ckpt_root: Path) -> list[Path]:
    """Checkpoint directories, newest first."""
    if not ckpt_root.is_dir():
        return []
    return sorted((p for p in ckpt_root.glob("step_*") if p.is_dir()), key=lambda p: p.name, reverse=True)


def _verify_checkpoint(ck: Path) -> dict:
    """state.json of checkpoint `ck` after checking every file against its manifest's sha256;
    `InterpError` naming what is wrong."""
    from interp.io import verify_checksum

    try:
        man = json.loads((ck / CKPT_MANIFEST).read_text())
    except (OSError, ValueError):
        raise InterpError(f"checkpoint {ck.name} has no readable {CKPT_MANIFEST} (interrupted while saving)") from None
    where = f"{ck / CKPT_MANIFEST}"
    if not isinstance(man, dict) or not isinstance(man.get("sha256"), dict) or not man["sha256"]:
        raise InterpError(f"{where}: field sha256 must be a non-empty object of file -> checksum")
    if not all(isinstance(k, str) and "/" not in k and isinstance(v, str) for k, v in man["sha256"].items()):
        raise InterpError(f"{where}: field sha256 must map file names to checksum strings")
    if "state.json" not in man["sha256"]:
        raise InterpError(f"{where}: field sha256 does not list state.json")
    for name, digest in man["sha256"].items():
        verify_checksum(ck / name, digest, what=f"checkpoint file {ck.name}/{name}")
    try:
        state = json.loads((ck / "state.json").read_text())
    except (OSError, ValueError):
        raise InterpError(f"{ck / 'state.json'} is not valid JSON") from None
    where = f"{ck / 'state.json'}"
    if not isinstance(state, dict):
        raise InterpError(f"{where} does not hold a JSON object")
    if isinstance(state.get("step"), bool) or not isinstance(state.get("step"), int) or state["step"] < 0:
        raise InterpError(f"{where}: field step must be an integer >= 0")
    if not isinstance(state.get("curve", []), list):
        raise InterpError(f"{where}: field curve must be a list")
    if not isinstance(state.get("config"), dict):
        raise InterpError(f"{where}: field config must be an object")
    return state


def _config_diff(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def _load_checkpoint(trainer, sae, ck: Path) -> None:
    """SAELens' `load_trainer_state` + `load_weights_from_checkpoint`, except that
    `trainer_state.pt` (a pickle SAELens writes with torch.save) is read with
    ``torch.load(weights_only=True)``: PyTorch's restricted unpickler, tensors and plain
    containers only. (SAELens' own loader calls torch.load relying on the default.)"""
    from sae_lens.constants import ACTIVATION_SCALER_CFG_FILENAME, TRAINER_STATE_FILENAME

    trainer.activation_scaler.load(ck / ACTIVATION_SCALER_CFG_FILENAME)
    st = torch.load(ck / TRAINER_STATE_FILENAME, map_location=trainer.cfg.device, weights_only=True)
    trainer.optimizer.load_state_dict(st["optimizer"])
    trainer.lr_scheduler.load_state_dict(st["lr_scheduler"])
    for k in ("n_training_samples", "n_training_steps", "act_freq_scores", "n_forward_passes_since_fired",
              "n_frac_active_samples", "started_fine_tuning"):
        setattr(trainer, k, st[k])
    for name, sd in st["coefficient_schedulers"].items():
        trainer.coefficient_schedulers[name].load_state_dict(sd)
    sae.load_weights_from_checkpoint(ck)


def _resume(trainer, sae, ckpt_root: Path | None, cfg: SAETrainConfig, data_id: str) -> tuple[int, list]:
    """(step, curve) of the newest good checkpoint of this exact run, loaded into `trainer`/`sae`;
    (0, []) when there is none. Corrupt checkpoints are reported and skipped; one of a different
    configuration is reported with what differs, and training starts fresh."""
    for ck in _checkpoints(ckpt_root) if ckpt_root is not None else []:
        try:
            state = _verify_checkpoint(ck)
        except (InterpError, OSError, json.JSONDecodeError) as e:
            log.warning("skipping damaged checkpoint %s: %s", ck, e)
            continue
        if state.get("config") != cfg.to_dict() or state.get("data") != data_id:
            what = _config_diff(state.get("config") or {}, cfg.to_dict()) or f"activations {state.get('data')} -> {data_id}"
            log.warning("checkpoint %s is of a different run (%s); starting fresh", ck, what)
            return 0, []
        try:
            _load_checkpoint(trainer, sae, ck)
        except Exception as e:  # a file that passed its checksum but does not load: treat as damaged
            log.warning("skipping checkpoint %s that does not load: %s", ck, str(e).splitlines()[0][:160] if str(e) else type(e).__name__)
            continue
        log.info("resuming %s from checkpoint step %d/%d", cfg.hook, state["step"], cfg.steps)
        return int(state["step"]), state.get("curve", [])
    if ckpt_root is not None and _checkpoints(ckpt_root):
        log.warning("no usable checkpoint in %s; starting fresh", ckpt_root)
    return 0, []


def fit_sae(cfg: SAETrainConfig, d_in: int, batches: Iterator[torch.Tensor], metadata: dict,
            ckpt_dir: Path | None = None, data_id: str = "", device: str | torch.device | None = None,
            sync: DataParallelSync | None = None) -> FitResult:
    """Train one SAE on `batches` ([batch_size, d_in]) with SAELens on `device` (default cpu), in
    float32 whatever the batches' dtype; resumable from `ckpt_dir`.

    `batches` must be deterministic: on resume the first `step` batches are skipped. Data
    parallel: `batches` are this rank's slices of the global batches and `sync` averages the
    gradients over ranks (`interp.distributed.DataParallelSync`); only its writer checkpoints."""
    from sae_lens import SAETrainer
    from sae_lens.config import SAETrainerConfig

    tune_malloc()
    sync = sync or DataParallelSync()
    device = torch.device(device) if device is not None else torch.device("cpu")
    sae = make_training_sae(cfg, d_in, metadata).to(device)
    steps = cfg.steps
    lr = cfg.resolved_lr
    tcfg = SAETrainerConfig(
        total_training_samples=steps * cfg.batch_size, train_batch_size_samples=cfg.batch_size, lr=lr, lr_end=lr,
        lr_warm_up_steps=int(cfg.warmup_frac * steps), lr_decay_steps=int(cfg.decay_frac * steps),
        dead_feature_window=cfg.dead_window, feature_sampling_window=max(steps + 1, 2), device=str(device),
    )
    trainer = SAETrainer(cfg=tcfg, sae=sae, data_provider=iter(()))
    if cfg.optimizer == "signum":
        use_signum(trainer, lr)
    grad_hook = project_decoder_grad(sae) if cfg.unit_norm_decoder else None

    # Resume from the newest good checkpoint of this exact run.
    start, curve = _resume(trainer, sae, ckpt_dir, cfg, data_id)
    if sync.active:
        # Every rank reads the checkpoints itself; if two ranks saw different ones (rank 0 writing one
        # while another scanned, or a node without the shared folder), they would call different
        # collectives below (`gather_batches` runs only from step 0) and wait on each other until the
        # timeout. Agree first, and say so in one line instead.
        import torch.distributed as tdist

        starts: list = [None] * sync.world_size
        tdist.all_gather_object(starts, start)
        if len(set(starts)) > 1:
            raise InterpError(f"the ranks found different checkpoints to resume from (steps {starts}) in {ckpt_dir}; every rank "
                              "must see the same folder (a shared filesystem): rerun, or pass --overwrite to start over")
    first = next(batches, None)
    if first is None:
        raise InterpError("no training activations")
    if start == 0:
        # SAELens' scaler, estimated on the first batches (which are then trained on as usual).
        est = sync.gather_batches([first] + [b for _, b in zip(range(NORM_BATCHES - 1), batches)])
        if not all(torch.isfinite(b).all() for b in est):
            bad = next(i for i, b in enumerate(est) if not torch.isfinite(b).all())
            raise InterpError(f"non-finite (NaN/inf) activations at step {bad} (hook {cfg.hook}); stopping")
        est = [b.to(device, torch.float32) for b in est]
        if cfg.normalize:
            trainer.activation_scaler.estimate_scaling_factor(d_in, iter(est), n_batches_for_norm_estimate=len(est))
        # SAELens 6 starts b_dec at zero; starting it at the data mean (as dictionary_learning and
        # sparsify do) saves many steps on hooks with a large mean component (hook_z, resid).
        with torch.no_grad():
            x = trainer.activation_scaler.scale(torch.cat(est))
            sae.b_dec.copy_(x.mean(0))
            if cfg.unit_norm_decoder and not cfg.data_init:
                # sparsify's init: decoder = encoder transposed, rows at unit norm
                sae.W_dec.copy_(sae.W_enc.T)
                normalize_decoder_rows(sae)
            if cfg.data_init:
                # Decoder rows start as directions of real (centred) activations, encoder tied to
                # them, so every latent begins next to data it can fire on (fewer dead latents
                # in a short CPU run). Norms keep SAELens' decoder_init_norm.
                g = torch.Generator().manual_seed(cfg.seed)
                idx = torch.randint(len(x), (cfg.d_sae,), generator=g).to(device)
                dirs = x[idx] - x.mean(0)
                dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-8)
                sae.W_dec.copy_(dirs if cfg.unit_norm_decoder else dirs * sae.W_dec.norm(dim=-1, keepdim=True))
                sae.W_enc.copy_(sae.W_dec.T)
        pending = iter(est)
    else:
        for _ in range(start - 1):  # `first` was batch 0
            next(batches)
        pending = iter(())

    t0 = time.time()
    bar = tqdm(total=steps, initial=start, desc=f"train {cfg.arch} SAE {cfg.hook}", unit="step", leave=False,
               disable=not sync.writer)
    for step in range(start, steps):
        batch = next(pending, None)
        if batch is None:
            batch = next(batches, None)
        if batch is None:
            raise InterpError(f"ran out of activations at step {step}")
        if not torch.isfinite(batch).all():
            raise InterpError(f"non-finite (NaN/inf) activations at step {step} (hook {cfg.hook}); stopping")
        trainer.maybe_reset_sparsity()
        out = sync.step(trainer, batch.to(torch.float32))  # (trainer.step moves the batch to the SAE's device)
        trainer.n_training_steps += 1  # SAETrainer.step leaves this to its caller
        if cfg.unit_norm_decoder:
            normalize_decoder_rows(sae)
        if not torch.isfinite(out.loss):
            raise InterpError(f"training diverged: non-finite loss at step {step} (hook {cfg.hook}); lower --lr")
        if step % CURVE_EVERY == 0 or step == steps - 1:
            with torch.no_grad():
                err = sync.mean((out.sae_out - out.sae_in).pow(2).sum(-1).mean())
                var = sync.mean((out.sae_in - out.sae_in.mean(0)).pow(2).sum(-1).mean())
                l0 = sync.mean((out.feature_acts != 0).float().sum(-1).mean())
            curve.append({"step": step, "tokens": (step + 1) * cfg.batch_size, "loss": round(sync.mean(out.loss.detach()).item(), 5),
                          "mse": round(err.item(), 5), "l0": round(l0.item(), 3),
                          "explained_variance": round(1 - (err / var).item(), 5)})
            bar.set_postfix(loss=f"{out.loss.item():.4f}", l0=f"{l0.item():.1f}", ev=f"{curve[-1]['explained_variance']:.3f}")
        bar.update(1)
        if ckpt_dir is not None and sync.writer and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
            _save_checkpoint(trainer, ckpt_dir, {"step": step + 1, "curve": curve, "config": cfg.to_dict(), "data": data_id})
    bar.close()
    seconds = time.time() - t0
    if grad_hook is not None:
        grad_hook.remove()
    to_eval_weights(trainer)  # schedule-free: the averaged weights are the trained SAE

    if trainer.activation_scaler.scaling_factor is not None:
        sae.fold_activation_norm_scaling_factor(trainer.activation_scaler.scaling_factor)
        trainer.activation_scaler.scaling_factor = None
    trainer.set_final_sae_metadata()
    sae.eval()
    return FitResult(sae=sae, curve=curve, steps=steps, seconds=seconds, resumed_from=start)


def tensor_batches(acts: torch.Tensor, batch_size: int, seed: int, shuffle: bool = True) -> Iterator[torch.Tensor]:
    """Endless full batches from an in-memory [N, d] tensor, one permutation per epoch (or in order)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(acts), generator=g) if shuffle else torch.arange(len(acts))
        for j in range(0, len(acts) - batch_size + 1, batch_size):
            yield acts[perm[j : j + batch_size]].float()


def store_batches(store, hook: str, batch_size: int, seed: int, shuffle: bool = True) -> Iterator[torch.Tensor]:
    """Endless full batches of one hook streamed from an `ActivationStore` (epoch after epoch, a
    new shuffle each; at most two shards in memory). `shuffle=False` keeps the model's order
    (whole context rows together, as sparsify trains)."""
    epoch = 0
    while True:
        for b in store.iter_batches(hook, batch_size, shuffle=shuffle, seed=seed + 1000 * epoch):
            if len(b) == batch_size:
                yield b
        epoch += 1


def train_sae_on_tensor(acts: Float[torch.Tensor, "n d"], arch: str = "topk", d_sae: int = 512, k: int | None = None,
                        l1: float | None = None, steps: int | None = None, epochs: float | None = None,
                        batch_size: int = 1024, lr: float | None = None, seed: int = 0, hook_name: str | None = None,
                        hook_head_index: int | None = None, model_name: str | None = None, **recipe):
    """Train an SAELens SAE in memory on activations `acts` [N, d] and return the inference `SAE`.

    Length: `steps` optimizer steps, or `epochs` passes over `acts` (default: 20 epochs, at
    least 200 steps). `batch_size` is capped at N. Same SAELens loop and default recipe as
    `train_saes`; `recipe` overrides `SAETrainConfig`'s recipe fields (optimizer, normalize, ...)."""
    if acts.dim() != 2 or len(acts) == 0:
        raise InterpError(f"acts must be a non-empty [N, d] tensor, got shape {tuple(acts.shape)}")
    bad = (~torch.isfinite(acts)).any(-1).nonzero()
    if len(bad):
        raise InterpError(f"non-finite (NaN/inf) activations at row {int(bad[0])} (step 0); stopping")
    batch_size = min(batch_size, len(acts))
    if steps is None:
        steps = int((epochs if epochs is not None else 20) * len(acts) / batch_size)
        steps = steps if epochs is not None else max(200, steps)
    steps = max(1, steps)
    cfg = SAETrainConfig(hook=hook_name or "tensor", model=model_name or "", arch=arch, d_sae=d_sae, k=k, l1=l1,
                         tokens=steps * batch_size, lr=lr, batch_size=batch_size, seed=seed, checkpoint_every=0,
                         dead_window=max(5, min(40, steps // 10)), **recipe)
    meta = {"model_name": model_name, "hook_name": hook_name, "hook_head_index": hook_head_index}
    res = fit_sae(cfg, acts.shape[1], tensor_batches(acts.detach(), batch_size, seed, cfg.shuffle), meta, device=acts.device)
    return to_inference(res.sae)


@dataclass
class TrainResult:
    """One SAE trained by `train_saes`."""

    out_dir: Path
    config: SAETrainConfig
    metrics: dict
    train_seconds: float
    resumed_from: int
    skipped: bool = False  # already trained with this exact config
    curve: list = field(default_factory=list)


def acts_dir_for(model_name: str, hooks: list[str], n_tokens: int, seed: int = 0, source=None) -> Path:
    """Default cache directory for the activations of one collection: under the user data
    directory (`$INTERP_HOME/acts`), never under the current folder."""
    from dataclasses import asdict

    from interp.io import model_id, user_data_dir

    key = [model_name, sorted(hooks), n_tokens, seed] + ([asdict(source)] if source is not None and source.source != "corpus" else [])
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return user_data_dir("acts") / f"{model_id(model_name)}-{h}"


def estimate_train_bytes(cfg: SAETrainConfig, d_in: int) -> int:
    """Rough peak memory of training one SAE, in bytes (float32): weights, gradients and two
    optimizer buffers (Adam's moments; schedule-free's z uses one) of W_enc + W_dec, plus the
    per-batch [batch, d_sae] pre-activations with their gradient and codes, and the batch itself."""
    params = 2 * cfg.d_sae * d_in + cfg.d_sae + d_in
    return 4 * (4 * params + 3 * cfg.batch_size * cfg.d_sae + 4 * cfg.batch_size * d_in)


def _available_bytes(device: torch.device) -> int | None:
    import os

    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_training_fits(cfg: SAETrainConfig, d_in: int, device: torch.device) -> None:
    """One-line `InterpError` (with the estimate) when an SAE cannot fit in the device's memory."""
    need, have = estimate_train_bytes(cfg, d_in), _available_bytes(device)
    if have is not None and need > have:
        raise InterpError(f"training an SAE with d_sae={cfg.d_sae} on {cfg.hook} (d_in={d_in}, batch {cfg.batch_size}) needs "
                          f"about {_gib(need)}, more than the {_gib(have)} of {device.type} memory here; lower --d-sae or --batch-size")


def train_saes(cfgs: list[SAETrainConfig], out_dirs: list[str | Path], acts_dir: str | Path | None = None,
               act_tokens: int | None = None, eval_tokens: int = 16384, model=None, overwrite: bool = False,
               keep_acts: bool = True, on_result=None, device: str | None = None,
               source: "SourceSpec | None" = None, parallel: Parallel | None = None) -> tuple[list[TrainResult], float]:
    """Train several SAEs from ONE model pass: collect every hook's activations once
    (`collect_activations`, float16 shards, through the bridge's forward stopped after the hook, `interp.hooks.collect`), then
    train each SAE from disk on the model's device in float32, evaluate it, save it.

    Everything is checked before the model runs: output directories (an existing SAE directory is
    replaced only with `overwrite`; a file or another kind of directory never), memory for each
    SAE, disk for the activations. `act_tokens` activation vectors are collected (default: the
    largest `tokens`); SAEs that ask for more train for several epochs. A directory that already
    holds the same finished config is skipped unless `overwrite`. `on_result(TrainResult)` is
    called as each SAE is saved. `source` (`interp.data.sources.SourceSpec`: text, JSONL, parquet,
    dataset directory or hf:NAME, context size, BOS) defaults to the embedded corpus at the
    model's context. Returns the results and the collection time in seconds. Under torchrun, `parallel`
    (`interp.distributed.from_env`) splits the collection by shards and the training by batch rows
    (or by SAE with `distribute_hooks`); every rank returns every result."""
    from interp.activations import CollectConfig, Manifest
    from interp.data.sources import SourceSpec
    from interp.device import device_of
    from interp.hooks import hook_dim, parse_hook
    from interp.io import RunLock, check_output_dir
    from interp.models import load_model
    from interp.sae.io import CFG, model_loading_info

    if not cfgs or len(cfgs) != len(out_dirs):
        raise InterpError("give one output directory per SAE config")
    if len({c.model for c in cfgs}) != 1:
        raise InterpError("SAEs trained from one activation pass must share a model")
    if len({str(Path(o).resolve()) for o in out_dirs}) != len(out_dirs):
        raise InterpError("two SAEs would be written to the same output directory")

    todo = []
    results: list[TrainResult | None] = []
    for c, o in zip(cfgs, out_dirs):
        o = Path(o)
        if _finished_config(o) == c.to_dict() and not overwrite:
            log.info("%s already holds this SAE; skipping (pass overwrite to retrain)", o)
            results.append(TrainResult(o, c, json.loads((o / "metrics.json").read_text()), 0.0, 0, skipped=True))
            continue
        check_output_dir(o, marker=CFG, overwrite=overwrite, what="SAE output directory")
        partial = _partial(o)
        if partial.exists() and not partial.is_dir():
            raise InterpError(f"{partial} is a file, in the way of the training checkpoints; move it (nothing was changed)")
        results.append(None)
        todo.append((len(results) - 1, c, o))
    if not todo:
        return results, 0.0  # type: ignore[return-value]

    par = parallel or dist.LOCAL
    dist.agree(par, lambda: [par.local_batch(c.batch_size) for c in cfgs])  # uneven budgets fail on every rank, before any work
    model_name = cfgs[0].model
    model = model if model is not None else load_model(model_name, **({"device": device} if device else {}))
    dev = device_of(model)
    todo = [(i, replace(c, hook=str(parse_hook(model, c.hook))), o) for i, c, o in todo]
    dims = {c.hook: hook_dim(model, parse_hook(model, c.hook)) for _, c, _ in todo}
    for _, c, _ in todo:
        check_training_fits(c, dims[c.hook], dev)

    act_tokens = act_tokens or max(c.tokens for _, c, _ in todo)
    todo_hooks = list(dict.fromkeys(c.hook for _, c, _ in todo))
    src = source or SourceSpec()
    acts = Path(acts_dir) if acts_dir else acts_dir_for(model_name, todo_hooks, act_tokens, source=src)
    loading = model_loading_info(model)
    ccfg = CollectConfig(hooks=todo_hooks, n_tokens=act_tokens, dtype="float16", source=src.source, text_field=src.text_field,
                         split=src.split, seq_len=src.context_size, prepend_bos=src.prepend_bos, seed=src.seed)
    seq_len = src.context_size or model.cfg.n_ctx
    if seq_len > model.cfg.n_ctx:
        raise InterpError(f"--context-size {seq_len} is longer than the model's context of {model.cfg.n_ctx}")
    reuse = False
    if (acts / "manifest.json").exists():
        # Reuse a finished collection that was made by the same model, loading policy, source,
        # context size and BOS policy and holds every hook needed with enough tokens. Anything else
        # is left to `collect_activations` (it resumes the identical run, refuses a different one).
        try:
            old = Manifest.read(acts)
        except InterpError:
            old = None
        oc = old.config if old is not None else {}
        reuse = (old is not None and old.complete and old.model == model_name and set(todo_hooks) <= set(old.hooks)
                 and old.n_tokens >= act_tokens and old.seq_len == seq_len and oc.get("processing") == loading.get("processing")
                 and all(oc.get(k) == getattr(ccfg, k) for k in ("source", "text_field", "split", "prepend_bos", "seed")))
    if par.active:  # rank 0 decides: a rank reading the manifest while another writes it must not take the other path
        reuse = dist.broadcast_from_writer(par, reuse)
    if not reuse:
        need = act_tokens * sum(dims[h] for h in todo_hooks) * 2
        root = next(p for p in [acts, *acts.parents] if p.exists())
        free = shutil.disk_usage(root).free
        if need > free:
            raise InterpError(f"collecting {act_tokens} tokens at {len(todo_hooks)} hook(s) needs about {_gib(need)} of disk "
                              f"in {acts}, but only {_gib(free)} is free; lower --act-tokens")
    try:
        with contextlib.ExitStack() as locks:
            # one training per run directory, taken before the model runs (by the rank that writes it)
            dist.agree(par, lambda: [locks.enter_context(RunLock(_partial(o), what="SAE training"))
                                     for j, (_, _, o) in enumerate(todo) if par.writes(j, len(todo))])
            if overwrite:  # start over: the checkpoints of an earlier run (damaged or not) never wedge a rerun
                for j, (_, _, o) in enumerate(todo):
                    if par.writes(j, len(todo)):
                        for ck in _checkpoints(_partial(o)):
                            shutil.rmtree(ck, ignore_errors=True)
            collect_s = _collect_and_fit(model, model_name, todo, results, acts, ccfg, reuse, loading, dev, eval_tokens, on_result,
                                         own_cache=acts_dir is None, par=par)
    finally:  # keep a .partial only while it holds a resumable checkpoint
        for j, (_, _, o) in enumerate(todo):
            if not par.writes(j, len(todo)):
                continue
            p = _partial(o)
            if p.is_dir() and ((o / CFG).exists() or not any(p.iterdir())):
                shutil.rmtree(p, ignore_errors=True)
    if not keep_acts and acts_dir is None and par.is_writer:
        shutil.rmtree(acts, ignore_errors=True)
    return results, collect_s  # type: ignore[return-value]


def _collect_and_fit(model, model_name, todo, results, acts, ccfg, reuse, loading, dev, eval_tokens, on_result,
                     own_cache: bool, par: Parallel = dist.LOCAL) -> float:
    """The work of `train_saes` once everything is checked and locked: collect, then train,
    evaluate and save each SAE. Returns the collection time."""
    from interp.activations import ActivationStore, collect_activations
    from interp.hooks import parse_hook
    from interp.sae.eval import evaluate_sae

    t0 = time.time()
    if not reuse:
        try:
            collect_activations(model, ccfg, acts, model_name=model_name, parallel=par)
        except InterpError as e:
            if own_cache and "holds a different collect run" in str(e):  # our own cache dir: rebuilt (atomically)
                collect_activations(model, ccfg, acts, model_name=model_name, overwrite=True, parallel=par)
            else:
                raise
    collect_s = time.time() - t0
    store = ActivationStore(acts)
    data_id = f"{store.manifest.corpus}:{store.manifest.n_tokens}:{store.manifest.config.get('seq_len')}"
    if par.active and par.is_writer:
        log.info("training %d SAE(s) on %d ranks (%s): global batch %s", len(todo), par.world_size,
                 "each rank its own SAEs" if par.distribute_hooks else "data parallel",
                 ", ".join(f"{c.batch_size} ({par.local_batch(c.batch_size)} per rank)" for _, c, _ in todo))
    for j, (i, c, o) in enumerate(todo):
        if not par.trains(j, len(todo)):
            continue
        sync = par.sync()
        if store.manifest.n_tokens < c.batch_size:
            raise InterpError(f"only {store.manifest.n_tokens} activations collected, fewer than one batch ({c.batch_size})")
        hs = parse_hook(model, c.hook)
        meta = {"model_name": model_name, "hook_name": hs.name, "hook_head_index": hs.head,
                "context_size": store.manifest.seq_len, "prepend_bos": True, "dataset_path": store.manifest.corpus,
                "model_from_pretrained_kwargs": loading.get("processing") or {}, "interp_model_loading": loading,
                "interp_train_config": c.to_dict()}
        res = fit_sae(c, store.manifest.d[c.hook], par.rank_slice(store_batches(store, c.hook, c.batch_size, c.seed, c.shuffle)),
                      meta, ckpt_dir=_partial(o) / "ckpt", data_id=data_id, device=dev, sync=sync)
        if not sync.writer:
            continue
        metrics = evaluate_sae(to_inference(res.sae).to(dev), model, n_tokens=eval_tokens).metrics
        extra = {"train_tokens": res.steps * c.batch_size, "train_seconds": round(res.seconds, 1),
                 "activation_tokens": store.manifest.n_tokens, "arch": c.arch, "hook": c.hook, "config": c.to_dict(),
                 "world_size": par.world_size, "global_batch": c.batch_size,
                 "parallel": ("hooks" if par.distribute_hooks else "data") if par.active else "none"}
        save_sae(res.sae, o, metrics=metrics, curve=res.curve, extra=extra, overwrite=True)  # (checked before any work)
        shutil.rmtree(_partial(o) / "ckpt", ignore_errors=True)
        log.info("%s: %s", o, {k: round(v, 4) for k, v in metrics.items() if k in ("l0", "explained_variance", "ce_loss_score")})
        results[i] = TrainResult(o, c, metrics, res.seconds, res.resumed_from, curve=res.curve)
        if on_result is not None:
            on_result(results[i])
    if par.active:  # every rank returns every result: read those another rank saved
        dist.barrier(par)
        for i, c, o in todo:
            if results[i] is None:
                m = json.loads((o / "metrics.json").read_text())
                results[i] = TrainResult(o, c, m, m.get("train_seconds", 0.0), 0)
    return collect_s


def _partial(out: Path) -> Path:
    """Where a run in progress keeps its resumable checkpoints (removed when the SAE is saved)."""
    return out.with_name(out.name + ".partial")


def _finished_config(out: Path) -> dict | None:
    f = out / "metrics.json"
    if not f.exists() or not (out / "sae_weights.safetensors").exists():
        return None
    try:
        return json.loads(f.read_text()).get("config")
    except json.JSONDecodeError:
        return None


def train_sae(cfg: SAETrainConfig, out_dir: str | Path, **kw) -> TrainResult:
    """Train one SAE (see `train_saes`)."""
    return train_saes([cfg], [out_dir], **kw)[0][0]
