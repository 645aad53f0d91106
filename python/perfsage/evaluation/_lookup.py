"""The nn-Meter-style baseline: a model's metric is the sum of per-operator ("kernel") costs.

nn-Meter (Zhang et al., MobiSys 2021) measures each kernel on the device and predicts a model as the
sum of its kernels. We have labels for whole models only, so the table is fitted from them: each
kernel key (op type and its main configuration: kernel size, stride, dilation, fused activation,
input and weight bit widths) costs ``c0 + c1·MACs + c2·activation bytes + c3·parameter bytes``
with non-negative coefficients, and the coefficients of all keys are fitted jointly by non-negative
least squares on the relative error of the summed model cost, ``Σ_models ((Σ_ops cost - y) / y)²``.
Keys never seen in training fall back to a table fitted the same way with the op type alone as key,
and op types never seen to one global cost. Above JOINT_MAX_ROWS training rows the joint fit uses a
seeded sample of them.

``lookup_ops`` (OperatorLookupMethod) is the same table fitted as nn-Meter fits it, from kernel
measurements: where the training rows have per-operator labels for a metric (Vela's per-layer
estimates), each key's coefficients by NNLS on its own operators' labels, each operator's error
relative to its model's label (the error it adds to its model's relative error); metrics without
them (peak memory) are fitted jointly as above but with the op type as the key: Lawson-Hanson on the
2,000-4,000 columns of the kernel keys of the world data solves a new system at every step and took
5 minutes and more per fit here. Measured once on 2,400 world models
(ethos-u55-256, 600 held out): latency MAPE 25% against the joint fit's 31%, energy 29% against
38%, but off-chip flash 261% against 146% (a model's flash traffic is not only its operators'
weights). Relative to each operator's own label instead, latency was 31%.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from .._core import Graph

from .._kernel_table import COST_TERMS, KEY_FIELDS, LEVELS, RIDGE, KernelTable, _stack_operator_labels
from .. import _kernel_table
from ._method import Labelled, Method, check_labels, load_arrays, save_arrays


class LookupMethod(KernelTable, Method):
    """Per-kernel cost table fitted by NNLS on whole-model labels (see the module docstring); the
    table (fit, operator costs, predict) is perfsage._kernel_table's."""

    name = "lookup"
    # Given per-operator labels only to score its operator costs against them (the fit reads model labels).
    uses_operator_labels = True
    # Whether metrics fitted jointly on model labels get a kernel-level table (else their kernels
    # take their op type's coefficients).
    joint_kernel_level = True
    summary = (
        "nn-Meter-style kernel lookup table: model cost = Σ over its operators of a per-kernel cost "
        "c0 + c1·MACs + c2·activation bytes + c3·parameter bytes, kernel key = op type + kernel size, stride, "
        "dilation, fused activation, input and weight bits. Without per-operator labels the non-negative "
        "coefficients of all kernels are fitted jointly by NNLS (Lawson–Hanson) on the relative error of the "
        "summed model cost (on a seeded sample of 20,000 rows above that), one table per metric; kernels unseen "
        "in training use a table keyed by op type alone, unseen op types one global cost.")

    def __init__(self, columns: Sequence[str], units: Sequence[str], seed: int = 0, threads: int = 0) -> None:
        Method.__init__(self, columns, units, seed, threads)
        KernelTable.__init__(self, columns, seed)

    def config(self) -> Dict[str, Any]:
        return {"key_fields": list(KEY_FIELDS), "cost_terms": list(COST_TERMS), "ridge": RIDGE,
                "loss": "relative squared error", "max_rows": _kernel_table.JOINT_MAX_ROWS}

    def fit(self, train: Labelled, val: Labelled, progress: bool = False,
            operator_labels: Optional[Tuple[Any, Any]] = None) -> Dict[str, Any]:
        graphs, labels = train
        return self.fit_tables(graphs, check_labels(labels, graphs, self.columns, f"{self.name} train"), None)

    def graph_operator_costs(self, graph: Graph) -> np.ndarray:
        """One graph's operator costs ``[num_nodes, metrics]`` (scored against per-operator labels)."""
        return self.operator_costs([graph])[0]

    def save(self, path: Path) -> None:
        arrays = {}
        for level in LEVELS:
            arrays[f"table_{level}"] = self.tables[level]
            arrays[f"coefficients_{level}"] = self.coefficients[level]
        save_arrays(path, arrays, {"kind": self.name, "columns": self.columns, "units": self.units,
                                   "key_fields": list(KEY_FIELDS), "cost_terms": list(COST_TERMS)})

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> "LookupMethod":
        arrays, meta = load_arrays(path, cls.name)
        if meta.get("key_fields") != list(KEY_FIELDS) or meta.get("cost_terms") != list(COST_TERMS):
            raise ValueError(f"{path}: a lookup table with other key fields or cost terms than this perfsage's")
        self = cls(meta["columns"], meta["units"], threads=threads)
        for level in LEVELS:
            self.tables[level] = arrays[f"table_{level}"]
            self.coefficients[level] = arrays[f"coefficients_{level}"]
        return self


class OperatorLookupMethod(LookupMethod):
    """The kernel table fitted from per-operator labels where they exist (see the module docstring)."""

    name = "lookup_ops"
    joint_kernel_level = False
    summary = (
        "the same kernel table fitted as nn-Meter fits it, from kernel measurements: for a metric with "
        "per-operator labels (Vela's per-layer estimates) each kernel's coefficients by NNLS on its own "
        "operators' labels, each operator's error relative to its model's label; metrics without them (peak "
        "memory) fitted jointly on model labels with the op type as the key (a joint fit over thousands of "
        "kernel columns takes minutes per split here).")

    def config(self) -> Dict[str, Any]:
        return {**super().config(), "operator_labels": "per-kernel NNLS, error relative to the model label",
                "joint_fit_key": "op_type"}

    def fit(self, train: Labelled, val: Labelled, progress: bool = False,
            operator_labels: Optional[Tuple[Any, Any]] = None) -> Dict[str, Any]:
        graphs, labels = train
        y = check_labels(labels, graphs, self.columns, f"{self.name} train")
        node_y = _stack_operator_labels(operator_labels[0] if operator_labels is not None else None, graphs,
                                        len(self.columns))
        return self.fit_tables(graphs, y, node_y)
