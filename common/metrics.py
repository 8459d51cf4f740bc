"""How a build answers against another: the one place agreement is computed (the trial, the run's
metrics, the --min-agreement search)."""
from __future__ import annotations

import numpy as np


def agreeing_rows(got: np.ndarray, want: np.ndarray) -> int:
    """How many rows of two logit arrays predict the same class."""
    return int((got.argmax(axis=1) == want.argmax(axis=1)).sum())


def agreement_figures(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """The share of rows whose predicted class is the same, and the largest |Δlogit|: how a build
    answers against another, wherever that is asked (the trial, the run's metrics)."""
    return agreeing_rows(got, want) / len(want), float(np.abs(got - want).max())
