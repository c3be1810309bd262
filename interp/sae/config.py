"""`SAETrainConfig`: everything that decides one SAE training run (checked in `__post_init__`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from interp.errors import InterpError

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
    lr: float = 1e-3  # Adam learning rate (activations are normalised to norm sqrt(d_in))
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
            if self.l1 < 0:
                raise InterpError("--l1 must be non-negative")
        if self.tokens < self.batch_size:
            raise InterpError(f"--tokens {self.tokens} is fewer than one batch ({self.batch_size})")
        if self.lr <= 0:
            raise InterpError("--lr must be positive")
        if not (0 <= self.warmup_frac < 1 and 0 <= self.decay_frac < 1 and self.warmup_frac + self.decay_frac < 1):
            raise InterpError("warmup_frac and decay_frac must be in [0, 1) and sum to less than 1")
        if self.checkpoint_every < 0:
            raise InterpError("checkpoint_every must be >= 0")

    @property
    def steps(self) -> int:
        return self.tokens // self.batch_size

    def to_dict(self) -> dict:
        return asdict(self)
