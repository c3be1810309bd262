"""Device and dtype: the one place that turns `--device` / `--dtype` (or `INTERP_DEVICE` /
`INTERP_DTYPE`) into torch objects. Everything else takes the device of the thing it meets
(`device_of(model)`), so a CUDA model never meets a CPU tensor.

`auto` picks cuda, then mps, then cpu. Models may run in bfloat16/float16; SAEs train and
evaluate in float32 (`SAE_DTYPE`).
"""

from __future__ import annotations

import os

import torch

from interp.errors import InterpError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SAE_DTYPE = torch.float32


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """`spec` (or `$INTERP_DEVICE`, default `auto`) as a `torch.device` that exists on this machine.

    Raises `InterpError` with one line when the device is unknown or absent (`cuda` without CUDA)."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or os.environ.get("INTERP_DEVICE") or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InterpError(f"--device {spec}: CUDA is not available on this machine (torch {torch.__version__}); use --device cpu or auto")
        if spec != "cuda":
            idx = spec.split(":", 1)[1]
            if not idx.isdigit():
                raise InterpError(f"--device {spec}: expected cuda:N with N a GPU index")
            if int(idx) >= torch.cuda.device_count():
                raise InterpError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return torch.device(spec)
    if spec == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise InterpError("--device mps: Apple MPS is not available on this machine; use --device cpu or auto")
        return torch.device("mps")
    raise InterpError(f"--device {spec!r}: expected one of {', '.join(DEVICE_CHOICES)}")


def resolve_dtype(spec: str | torch.dtype | None = None, device: torch.device | None = None) -> torch.dtype:
    """`spec` (or `$INTERP_DTYPE`, default float32) as a torch dtype; one-line error if unsupported.

    float16 on the CPU is refused: most CPU kernels do not implement it."""
    if isinstance(spec, torch.dtype):
        dtype = spec
    else:
        name = (spec or os.environ.get("INTERP_DTYPE") or "float32").strip().lower()
        name = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}.get(name, name)
        if name not in DTYPES:
            raise InterpError(f"--dtype {name!r}: expected one of {', '.join(DTYPES)}")
        dtype = DTYPES[name]
    if device is not None and device.type == "cpu" and dtype == torch.float16:
        raise InterpError("--dtype float16 is not supported on the CPU; use float32 or bfloat16")
    return dtype


def device_of(obj) -> torch.device:
    """The device of a module (its first parameter or buffer) or tensor; cpu if it has none."""
    if isinstance(obj, torch.Tensor):
        return obj.device
    for t in obj.parameters():
        return t.device
    for t in obj.buffers():
        return t.device
    return torch.device("cpu")


def dtype_of(obj) -> torch.dtype:
    """The floating dtype of a module's parameters (float32 if it has none)."""
    if isinstance(obj, torch.Tensor):
        return obj.dtype
    for t in obj.parameters():
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def synchronize(device: torch.device | str) -> None:
    """Wait for queued kernels (for honest timings on cuda/mps); a no-op on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
