"""MoE-X sparse experts (Yang et al., 2025) and the chess board-state metrics (Karvonen et al., 2024).

layer.py     dense / Switch / MoE-X MLPs that drop into a TransformerLens block (hook_moex_z, hook_gates)
upcycle.py   an MoE layer initialised from a trained dense MLP
model.py     the character-level chess transformer: build, save, load (cfg.json + safetensors)
train.py     the training loop (checkpoints, resume, upcycling)
metrics.py   coverage and board reconstruction for any feature matrix
evaluate.py  validation loss, legal-move rate, coverage, reconstruction of a model directory
suite.py     the comparison suite at equal active parameters, and shipping its models
browse.py    what the dashboard page shows: routing statistics, unit table, top contexts
"""
