"""The :class:`SearchSpace` type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Any, Callable, Dict, Mapping, Optional

import numpy as np

from ._builder import SpecBuilder

# Redraws allowed per sample before giving up on a MAC budget; the spaces' budgets reject far
# fewer than one draw in ten, so reaching this means a space is broken.
_MAX_DRAWS = 1000


@dataclass(frozen=True)
class SearchSpace:
    """A seeded generator of architecture specs.

    ``knobs`` maps each searched choice to its options (a list) or, for choices that depend on
    others, a description. ``max_macs`` and ``max_params`` bound the estimated cost of a sample
    (see :func:`perfsage.spaces.estimate_cost`): draws above either are redrawn from the same
    generator, so sampling stays deterministic.
    """

    name: str
    description: str
    knobs: Mapping[str, Any]
    build: Callable[[np.random.Generator], SpecBuilder]
    max_macs: Optional[int] = None
    max_params: Optional[int] = None

    def sample_spec(self, rng: np.random.Generator, ops: Optional[AbstractSet[str]] = None) -> Dict[str, Any]:
        """One architecture spec drawn with ``rng``; with ``ops``, one whose layers all have one of
        those ops (draws with others are redrawn, as those over budget are)."""
        for _ in range(_MAX_DRAWS):
            builder = self.build(rng)
            if (self.max_macs is None or builder.macs <= self.max_macs) and (
                self.max_params is None or builder.params <= self.max_params
            ):
                spec = builder.spec()
                if ops is None or all(layer["op"] in ops for layer in spec["layers"]):
                    return spec
        raise RuntimeError(
            f"search space {self.name!r}: no draw within {self.max_macs} MACs and {self.max_params} "
            f"parameters" + ("" if ops is None else " made of the dtype's ops") + f" in {_MAX_DRAWS} draws"
        )

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r})"
