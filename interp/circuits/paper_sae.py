"""The discrete-SAE paper's own sparse autoencoder (O'Neill & Bui, 2024; github
charlieoneill11/sae-circuits, ``src/sae.py`` and ``src/train.py``), followed line by line.

    x_c  = x - b                                    (tied pre-encoder bias b, initialised to 0)
    f    = ReLU(W_enc x_c + b_enc)                  W_enc [d_sae, d_in], every row unit norm
    x^   = W_dec f + b                              W_dec [d_in, d_sae], every row unit norm
    loss = mean((x^ - x)^2) + lambda * mean_n ||f_n||_1

Adam (lr 1e-3), full batch, 500 epochs. Both weight matrices are re-normalised to unit rows before
every forward, and the gradient component parallel to each row is removed in a backward hook
(the authors' ``ConstrainedUnitNormLinear``, from the ``sparse_autoencoder`` library).

Hand-written rather than a SAELens training SAE because three of its parts have no SAELens
counterpart: (1) the decoder constraint is on the rows of the [d_in, d_sae] matrix, i.e. each
*input dimension's* weights across latents have unit norm (in SAELens orientation: the columns of
W_dec), which is what the authors' code does although a per-latent constraint was probably meant;
(2) the loss is the element-mean MSE plus lambda times the batch-mean L1 norm, with no decoder-norm
weighting; (3) the encoder rows are unit norm too. Kept exact so the paper's protocol is the paper's.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import nn


def _unit_rows(w: torch.Tensor) -> None:
    with torch.no_grad():
        torch.nn.functional.normalize(w, dim=-1, out=w)


def _remove_parallel(w: nn.Parameter):
    """Backward hook: drop the gradient component along each row of `w` (moves on the sphere)."""

    def hook(grad):
        dot = (grad * w).sum(-1, keepdim=True)
        return grad - dot * w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    return hook


class PaperSAE(nn.Module):
    """ReLU SAE with tied pre-bias and unit-norm encoder/decoder rows (see module docstring)."""

    def __init__(self, d_in: int, d_sae: int, device=None, dtype=torch.float32, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)  # a private generator: the global RNG is left alone
        self.b = nn.Parameter(torch.zeros(d_in, device=device, dtype=dtype))  # geometric_median_dataset=None -> 0
        self.W_enc = nn.Parameter(torch.randn(d_sae, d_in, generator=g).to(device=device, dtype=dtype))
        bound = 1 / math.sqrt(d_in)  # torch.nn.Linear's bias init, as the authors' layer
        self.b_enc = nn.Parameter((torch.rand(d_sae, generator=g) * 2 * bound - bound).to(device=device, dtype=dtype))
        self.W_dec = nn.Parameter(torch.randn(d_in, d_sae, generator=g).to(device=device, dtype=dtype))
        _unit_rows(self.W_enc)
        _unit_rows(self.W_dec)
        self.W_enc.register_hook(_remove_parallel(self.W_enc))
        self.W_dec.register_hook(_remove_parallel(self.W_dec))

    def encode(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_sae"]:
        _unit_rows(self.W_enc)
        return torch.relu((x - self.b) @ self.W_enc.T + self.b_enc)

    def decode(self, f: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_in"]:
        _unit_rows(self.W_dec)
        return f @ self.W_dec.T + self.b

    def forward(self, x):
        f = self.encode(x)
        return f, self.decode(f)


def paper_loss(x: torch.Tensor, f: torch.Tensor, x_hat: torch.Tensor, lam: float) -> torch.Tensor:
    """mean((x^ - x)^2) + lambda * mean over vectors of ||f||_1 (the authors' ``loss_fn``)."""
    return torch.nn.functional.mse_loss(x_hat, x) + lam * f.flatten(0, -2).norm(p=1, dim=-1).mean()


@torch.no_grad()
def paper_grads(sae: PaperSAE, x: Float[torch.Tensor, "N d_in"], lam: float) -> torch.Tensor:
    """Set ``p.grad`` of every parameter to what ``paper_loss(x, *sae(x), lam).backward()`` gives
    (with the unit-norm rows and the row-tangent projection of the backward hooks); return the loss.

    Written out by hand because at this size (a few hundred vectors) autograd's bookkeeping, not the
    matrix products, was most of the 500 epochs' cost. With N vectors, S latents, d inputs:

        xc = x - b,  a = xc W_enc^T + b_enc,  f = relu(a),  x^ = f W_dec^T + b
        g_x^ = 2 (x^ - x) / (N d)                    g_f = g_x^ W_dec + lam / N   (d|f|/df = 1 where f > 0)
        g_a  = g_f * [a > 0]                        g_b_enc = sum_n g_a
        g_W_dec = g_x^^T f,   g_W_enc = g_a^T xc,   g_b = sum_n g_x^ - g_b_enc W_enc
    and each weight gradient loses its component along its (unit) row."""
    _unit_rows(sae.W_enc)
    _unit_rows(sae.W_dec)
    n, d = x.shape
    xc = x - sae.b
    a = torch.addmm(sae.b_enc, xc, sae.W_enc.T)
    f = a.clamp_min(0)
    x_hat = torch.addmm(sae.b, f, sae.W_dec.T)
    diff = x_hat - x
    loss = diff.pow(2).mean() + lam * f.sum() / n
    g_xh = diff.mul_(2.0 / (n * d))
    g_a = (g_xh @ sae.W_dec).add_(lam / n).mul_(a > 0)
    g_benc = g_a.sum(0)
    grads = {sae.b: g_xh.sum(0).sub_(g_benc @ sae.W_enc), sae.b_enc: g_benc,
             sae.W_dec: g_xh.T @ f, sae.W_enc: g_a.T @ xc}
    for w in (sae.W_enc, sae.W_dec):  # rows are unit norm here, so this is the hooks' projection
        g = grads[w]
        g.sub_((g * w).sum(-1, keepdim=True) * w)
    for p, g in grads.items():
        p.grad = g
    return loss


def train_paper_sae(x: Float[torch.Tensor, "N d_in"], d_sae: int = 200, lam: float = 0.02, lr: float = 1e-3,
                    epochs: int = 500, seed: int = 0) -> PaperSAE:
    """Full-batch Adam training on `x` (the authors' ``train``), on x's device; gradients from
    `paper_grads` (equal to autograd's through the module's hooks; tested)."""
    sae = PaperSAE(x.shape[-1], d_sae, device=x.device, dtype=torch.float32, seed=seed)
    x = x.float()
    # fused: the same Adam update in one kernel per step (the per-parameter loop was a tenth of an epoch)
    opt = torch.optim.Adam(sae.parameters(), lr=lr, fused=x.device.type in ("cpu", "cuda"))
    for _ in range(epochs):
        paper_grads(sae, x, lam)
        opt.step()
    return sae.eval()
