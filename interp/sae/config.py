"""`SAETrainConfig`: everything that decides one SAE training run (checked in `__post_init__`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from interp.errors import InterpError

OPTIMIZERS = ("adam", "signum")
RECIPE_FIELDS = ("optimizer", "normalize", "unit_norm_decoder", "shuffle", "data_init", "aux_coef")
RECIPES = {
    # EleutherAI sparsify 1.3's defaults (sparsify/trainer.py, sparse_coder.py): SignSGD + schedule-free,
    # no input normalisation, unit-norm decoder, W_dec = W_enc^T init, no AuxK, data in model order.
    "topk": dict(optimizer="signum", normalize=False, unit_norm_decoder=True, shuffle=False, data_init=False, aux_coef=0.0),
    # interp's SAELens recipe before (still the one for the other architectures)
    "saelens": dict(optimizer="adam", normalize=True, unit_norm_decoder=False, shuffle=True, data_init=True, aux_coef=1.0),
}
MAX_TOKENS = 10**11  # training tokens: 230 days at the 5k tokens/s measured on a CPU (NOTES.md), days on a GPU
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
    # The training recipe. None = the default for the architecture: TopK trains with sparsify's recipe
    # (RECIPES["topk"], measured best in benchmarks/sae_bench.py), the others with SAELens' (RECIPES["saelens"]).
    optimizer: str | None = None  # adam (SAELens' trainer) or signum (sparsify's SignSGD + schedule-free, constant lr)
    normalize: bool | None = None  # scale activations to E||x|| = sqrt(d_in) (SAELens), folded into the saved weights
    unit_norm_decoder: bool | None = None  # sparsify's explicit unit-norm decoder rows (else SAELens' rescale by ||W_dec||)
    shuffle: bool | None = None  # shuffle activation rows (False: the model's order, whole context rows, as sparsify)
    data_init: bool | None = None  # decoder rows start at directions of real activations (else sparsify's W_dec = W_enc^T)
    aux_coef: float | None = None  # weight of SAELens' AuxK dead-latent loss (topk, batchtopk, matryoshka; 0: off)
    batch_size: int = 4096  # activation vectors per optimizer step
    warmup_frac: float = 0.02  # fraction of steps of linear lr warm-up (adam only; schedule-free needs none)
    decay_frac: float = 0.2  # fraction of final steps with linear lr decay to 0 (adam only)
    dead_window: int = 40  # steps without firing after which a latent counts as dead (TopK aux loss)
    seed: int = 0  # weight init and batch order
    checkpoint_every: int = 100  # steps between resumable checkpoints (0: none)

    def __post_init__(self):
        from interp.fields import check_types

        check_types(self, "of the SAE config")  # a grid or a resumed config can hold any JSON value
        if self.tokens > MAX_TOKENS:
            raise InterpError(f"--tokens {self.tokens:,} is above {MAX_TOKENS:,} (at ~5k tokens/s on a CPU, "
                              f"{self.tokens / 5e3 / 86400 / 365:,.0f} years)")
        if self.arch not in ARCHS:
            raise InterpError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        recipe = RECIPES["topk" if self.arch == "topk" else "saelens"]
        for f in RECIPE_FIELDS:
            if getattr(self, f) is None:
                setattr(self, f, recipe[f])
        if not (math.isfinite(self.aux_coef) and self.aux_coef >= 0):
            raise InterpError(f"--aux-coef must be a finite number >= 0, got {self.aux_coef}")
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
            # SAELens saves these SAEs with a threshold / gate / L1 scale it learns under its own decoder-norm
            # convention and lr schedule, which a schedule-free sign step or a renormalised decoder would
            # silently change; only TopK's saved form (plain top-k of W_enc x) is unaffected.
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
