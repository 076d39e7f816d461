"""Small shared helpers (no AnnData-specific logic beyond access)."""

from __future__ import annotations

import warnings

import numpy as np


class OsteoimmuneWarning(UserWarning):
    """Warnings raised by osteoimmune (coverage, subsetting, dropped groups)."""


def warn(message: str, stacklevel: int = 3) -> None:
    """Emit an :class:`OsteoimmuneWarning`."""
    warnings.warn(message, OsteoimmuneWarning, stacklevel=stacklevel)


def check_random_state(random_state) -> np.random.Generator:
    """Return a numpy Generator for ``random_state`` (int, None or Generator)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)
