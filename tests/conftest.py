"""Shared fixtures: the embedded model (loaded once), CPU threads pinned for stable runs."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest
import torch


@pytest.fixture(scope="session")
def model():
    from interp.models import load_model

    torch.manual_seed(0)
    return load_model("embedded")
