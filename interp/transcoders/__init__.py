"""Transcoders: sparse replacements of a model's MLPs (MLP input in, MLP output out), trained here and
saved in SAELens' transcoder format. See `train` (the loop), `io` (format, loading, fit checks),
`eval` (FVU, CE / KL scores)."""

from interp.transcoders.config import ARCHS, IN_HOOK, OUT_HOOK, TranscoderTrainConfig
from interp.transcoders.io import (TranscoderSet, check_set_fits, load_transcoder, load_transcoder_set, register,
                                   save_transcoder)

__all__ = ["ARCHS", "IN_HOOK", "OUT_HOOK", "TranscoderTrainConfig", "TranscoderSet", "check_set_fits", "load_transcoder",
           "load_transcoder_set", "register", "save_transcoder"]
