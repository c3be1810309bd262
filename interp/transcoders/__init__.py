"""Transcoders: sparse replacements of a model's MLPs (MLP input in, MLP output out), trained here and
saved in SAELens' transcoder format. See `train` (the loop), `io` (format, loading, fit checks),
`eval` (FVU, CE / KL scores).

The names below load lazily: `interp.cli` reads `config.ARCHS` to build its parser, and importing
`io` (torch, SAELens) there would slow every `interp` call. `import interp.transcoders.io` registers
the TopK transcoder class with SAELens."""

from interp.transcoders.config import ARCHS, IN_HOOK, OUT_HOOK, TranscoderTrainConfig

_FROM_IO = ("TranscoderSet", "check_set_fits", "load_transcoder", "load_transcoder_set", "register", "save_transcoder")

__all__ = ["ARCHS", "IN_HOOK", "OUT_HOOK", "TranscoderTrainConfig", *_FROM_IO]


def __getattr__(name: str):
    if name in _FROM_IO:
        from interp.transcoders import io

        return getattr(io, name)
    raise AttributeError(f"module 'interp.transcoders' has no attribute {name!r}")
