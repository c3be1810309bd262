"""Sparse autoencoders on SAELens: train (`train`), evaluate with SAEBench keys (`eval`),
load / save / list SAELens-format directories (`io`), rebuild the shipped set (`build`)."""
