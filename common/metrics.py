"""How a build answers against another: the one place agreement is computed (the trial, the run's
metrics, the --min-agreement search)."""
from __future__ import annotations

import numpy as np


def agreement_figures(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """The share of rows whose predicted class is the same, and the largest |Δlogit|: how a build
    answers against another, wherever that is asked (the trial, the metrics, the INT8 search)."""
    return (float((got.argmax(axis=1) == want.argmax(axis=1)).mean()),
            float(np.abs(got - want).max()))
