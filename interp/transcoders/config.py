"""`TranscoderTrainConfig`: everything that decides one transcoder training run (checked in `__post_init__`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from interp.errors import InterpError

ARCHS = ("topk", "jumprelu")
IN_HOOK = "blocks.{layer}.ln2.hook_normalized"  # what the MLP reads, before LayerNorm's affine weights
OUT_HOOK = "blocks.{layer}.hook_mlp_out"  # what the MLP writes into the residual stream


@dataclass
class TranscoderTrainConfig:
    """One per-layer transcoder: model, layer, architecture, size, sparsity and optimisation."""

    layer: int  # the block whose MLP is replaced (reads IN_HOOK, predicts OUT_HOOK)
    model: str = "embedded"  # model name for `interp.models.load_model`
    arch: str = "jumprelu"  # topk (k per token) or jumprelu (threshold per latent, L0 penalty)
    d_sae: int = 1024  # number of latents (features)
    k: int = 32  # active latents per token (topk only)
    l0_coef: float = 2e-3  # weight of the L0 penalty (jumprelu only), after warm-up
    skip: bool = False  # learn a linear skip connection W_skip (SAELens SkipTranscoder; Paulo et al. 2025)
    tokens: int = 2_000_000  # training samples seen (activation vectors), over as many epochs as needed
    lr: float = 1e-3  # Adam learning rate (linear decay to 0 over the last 20% of steps)
    batch_size: int = 1024  # activation vectors per optimizer step
    init_threshold: float = 1.5  # starting JumpReLU threshold (pre-activations start about N(0, 1): ~7% fire)
    bandwidth: float = 0.05  # JumpReLU straight-through-estimator bandwidth (SAELens' default)
    seed: int = 0  # weight init and batch order

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise InterpError(f"unknown transcoder architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.layer < 0:
            raise InterpError(f"--layer {self.layer}: must be >= 0")
        for name in ("d_sae", "tokens", "batch_size"):
            if getattr(self, name) <= 0:
                raise InterpError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.arch == "topk" and not 0 < self.k <= self.d_sae:
            raise InterpError(f"--k {self.k}: must be between 1 and --d-sae ({self.d_sae})")
        if not (self.lr > 0 and self.l0_coef >= 0 and self.bandwidth > 0 and self.init_threshold >= 0):
            raise InterpError("--lr and --bandwidth must be > 0, --l0-coef and --init-threshold >= 0")

    @property
    def steps(self) -> int:
        return max(1, self.tokens // self.batch_size)

    @property
    def in_hook(self) -> str:
        return IN_HOOK.format(layer=self.layer)

    @property
    def out_hook(self) -> str:
        return OUT_HOOK.format(layer=self.layer)

    @property
    def architecture(self) -> str:
        """The SAELens architecture name the trained transcoder is saved under."""
        base = "jumprelu_transcoder" if self.arch == "jumprelu" else "topk_transcoder"
        return base.replace("_transcoder", "_skip_transcoder") if self.skip else base

    def to_dict(self) -> dict:
        return asdict(self)
