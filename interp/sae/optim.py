"""sparsify's TopK recipe pieces, plugged into SAELens' `SAETrainer`.

* ``signum``: SignSGD (steepest descent in the L-inf norm, Bernstein et al. 2018) inside
  schedule-free's `ScheduleFreeWrapper(momentum=0.95)`, at a constant learning rate, exactly as
  EleutherAI sparsify 1.3 builds it (``sparsify/trainer.py``, optimizer "signum")::

      z <- z - lr * sign(grad f(y));   x <- (1 - c) x + c z;   y = (1 - beta) z + beta x

  Training steps are taken at y; the averaged x is what is evaluated and saved
  (`ScheduleFreeWrapper.eval()` swaps it in).
* unit-norm decoder rows: before each step the gradient component parallel to each decoder row is
  removed, after each step the rows are renormalised (sparsify's
  `remove_gradient_parallel_to_decoder_directions` / `set_decoder_norm_to_unit_norm`).

`SAETrainer` has no parameter for the optimizer or the scheduler; it builds an Adam and an lr
scheduler in `__init__` and calls ``self.optimizer.step()`` / ``self.lr_scheduler.step()`` in
`_train_step`, so `use_signum` replaces those two attributes after construction. SAELens' grad-norm
clipping (to 1.0) still runs; it rescales the whole gradient, which leaves its sign unchanged.
"""

from __future__ import annotations

import torch


class SignSGD(torch.optim.Optimizer):
    """p <- p - lr * sign(grad). Written out because torch has no SignSGD; the same ten lines as
    sparsify's `sparsify.sign_sgd.SignSGD` (interp does not depend on sparsify)."""

    def __init__(self, params, lr: float = 1e-3):
        if not lr > 0:
            raise ValueError(f"invalid learning rate {lr}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("SignSGD takes no closure")
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])


class ConstantLR:
    """Stands in for SAELens' lr scheduler: schedule-free needs none (sparsify uses none)."""

    def step(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def use_signum(trainer, lr: float) -> None:
    """Replace `trainer`'s Adam + scheduler by schedule-free SignSGD (in train mode)."""
    from schedulefree import ScheduleFreeWrapper

    opt = ScheduleFreeWrapper(SignSGD(trainer.sae.parameters(), lr=lr), momentum=0.95)
    opt.train()
    trainer.optimizer = opt
    trainer.lr_scheduler = ConstantLR()


def to_eval_weights(trainer) -> None:
    """Swap schedule-free's averaged weights in (no-op for other optimizers)."""
    if hasattr(trainer.optimizer, "eval") and getattr(trainer.optimizer, "train_mode", False):
        trainer.optimizer.eval()


@torch.no_grad()
def normalize_decoder_rows(sae) -> None:
    """||W_dec[i]|| = 1 for every latent i (sparsify adds finfo.eps to the norm)."""
    sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True) + torch.finfo(sae.W_dec.dtype).eps)


def project_decoder_grad(sae):
    """Register a hook that removes from W_dec's gradient its component along each row,
    grad_i <- grad_i - <grad_i, W_i> W_i, as soon as it is accumulated (before SAELens clips and
    steps). Returns the handle."""

    def hook(p: torch.Tensor) -> None:
        if p.grad is not None:
            p.grad.sub_((p.grad * p.data).sum(-1, keepdim=True) * p.data)

    return sae.W_dec.register_post_accumulate_grad_hook(hook)
