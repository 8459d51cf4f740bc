"""How a build answers against another, and how repeated figures are summarised: the one place
agreement is computed (the trial, the run's metrics, the --min-agreement search) and spreads are
taken."""
from __future__ import annotations

import statistics
from typing import Sequence

import numpy as np


def agreeing_rows(got: np.ndarray, want: np.ndarray) -> int:
    """How many rows of two logit arrays predict the same class."""
    return int((got.argmax(axis=1) == want.argmax(axis=1)).sum())


def agreement_figures(got: np.ndarray, want: np.ndarray) -> tuple[int, float]:
    """How many rows predict the same class, and the largest |Δlogit|: how a build answers
    against another, wherever that is asked (the trial, the run's metrics); the share is that
    count over the rows."""
    return agreeing_rows(got, want), float(np.abs(got - want).max())


def spread(values: Sequence[float]) -> dict:
    """median, min and max: how every repeated figure (rounds, trial passes) is reported."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
