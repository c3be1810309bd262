"""`SAETrainConfig`: everything that decides one SAE training run (checked in `__post_init__`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from interp.errors import InterpError

OPTIMIZERS = ("adam", "signum")
ARCHS = ("standard", "topk", "batchtopk", "jumprelu", "gated", "matryoshka")
K_ARCHS = ("topk", "batchtopk", "matryoshka")  # sparsity set by k
L1_ARCHS = ("standard", "gated", "jumprelu")  # sparsity set by a penalty coefficient


@dataclass
class SAETrainConfig:
    """One SAE: model, hook, SAELens architecture, size, sparsity and optimisation."""

    hook: str  # hook spec NAME or NAME:HEAD, e.g. blocks.1.hook_resid_post or blocks.1.attn.hook_z:3
    model: str = "embedded"  # model name for `interp.models.load_model`
    arch: str = "topk"  # one of ARCHS (SAELens training architecture)
    d_sae: int = 1024  # number of latents
    k: int | None = None  # active latents per token (topk, batchtopk, matryoshka); default 32
    l1: float | None = None  # sparsity coefficient (standard/gated: L1, jumprelu: L0); default per arch
    tokens: int = 1_000_000  # training samples (activation vectors) seen, over as many epochs as needed
    lr: float | None = None  # learning rate; None: the optimizer's rule (see `resolved_lr`)
    optimizer: str = "adam"  # adam (SAELens' trainer) or signum (sparsify's SignSGD + schedule-free)
    normalize: bool = True  # scale activations to E||x|| = sqrt(d_in) (SAELens), folded into the saved weights
    unit_norm_decoder: bool = False  # sparsify's explicit unit-norm decoder rows (else SAELens' rescale by ||W_dec||)
    shuffle: bool = True  # shuffle activation rows within and across shards (False: model order, as sparsify)
    batch_size: int = 4096  # activation vectors per optimizer step
    warmup_frac: float = 0.02  # fraction of steps of linear lr warm-up
    decay_frac: float = 0.2  # fraction of final steps with linear lr decay to 0
    dead_window: int = 40  # steps without firing after which a latent counts as dead (TopK aux loss)
    aux_coef: float = 1.0  # weight of SAELens' AuxK dead-latent loss (topk, batchtopk, matryoshka)
    data_init: bool = True  # start decoder rows at directions of real activations (fewer dead latents)
    seed: int = 0  # weight init and batch order
    checkpoint_every: int = 100  # steps between resumable checkpoints (0: none)

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise InterpError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.d_sae <= 0:
            raise InterpError("--d-sae must be positive")
        if self.k is not None and self.l1 is not None:
            raise InterpError("give --k or --l1, not both")
        if self.arch in K_ARCHS:
            if self.l1 is not None:
                raise InterpError(f"{self.arch} SAEs take --k, not --l1")
            self.k = 32 if self.k is None else self.k
            if self.k <= 0:
                raise InterpError("--k must be positive")
            if self.k > self.d_sae:
                raise InterpError(f"--k {self.k} is larger than --d-sae {self.d_sae}")
        else:
            if self.k is not None:
                raise InterpError(f"{self.arch} SAEs take --l1, not --k")
            self.l1 = 1.0 if self.l1 is None else self.l1
            if not (math.isfinite(self.l1) and self.l1 >= 0):
                raise InterpError(f"--l1 must be a finite number >= 0, got {self.l1}")
        if self.batch_size <= 0:
            raise InterpError(f"--batch-size must be positive, got {self.batch_size}")
        if self.tokens < self.batch_size:
            raise InterpError(f"--tokens {self.tokens} is fewer than one batch ({self.batch_size})")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise InterpError(f"--lr must be a finite number > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise InterpError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.arch != "topk" and (self.unit_norm_decoder or self.optimizer != "adam"):
            # SAELens saves these SAEs with a threshold / gate / L1 scale learned under Adam and its
            # decoder-norm convention; we have not measured sparsify's recipe on them.
            raise InterpError(f"--optimizer signum and --unit-norm-decoder are TopK recipes; {self.arch} SAEs train with adam")
        if not (0 <= self.warmup_frac < 1 and 0 <= self.decay_frac < 1 and self.warmup_frac + self.decay_frac < 1):
            raise InterpError("warmup_frac and decay_frac must be in [0, 1) and sum to less than 1")
        if self.checkpoint_every < 0:
            raise InterpError("checkpoint_every must be >= 0")

    @property
    def steps(self) -> int:
        return self.tokens // self.batch_size

    @property
    def resolved_lr(self) -> float:
        """`lr`, or the optimizer's default: Adam 1e-3 (with normalised activations); SignSGD
        sparsify's rule 5e-3 / sqrt(d_sae / 2^14) (sparsify/trainer.py, optimizer "signum")."""
        if self.lr is not None:
            return self.lr
        return 1e-3 if self.optimizer == "adam" else 5e-3 / math.sqrt(self.d_sae / 2**14)

    def to_dict(self) -> dict:
        return asdict(self)
