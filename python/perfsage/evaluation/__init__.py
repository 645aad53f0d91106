"""Accuracy evaluation of perfsage against baselines: ``perfsage evaluate`` and its parts.

::

    from perfsage.evaluation import EvaluationOptions, evaluate
    evaluate(EvaluationOptions("ethos.parquet", ["ethos-u55-256"], Path("eval"), splits=["random"]))

Metrics (NumPy, ties handled): :func:`accuracy`, :func:`mape`, :func:`rmspe`, :func:`spearman`,
:func:`kendall_tau_b`. Baselines, each with ``fit`` / ``predict`` / ``save`` / ``load``:
:class:`LogLinearMethod` (MACs/params regression in log space), :class:`LookupMethod` (nn-Meter-style
kernel table fitted by :func:`nnls` on model labels), :class:`OperatorLookupMethod` (the same table
fitted on per-operator labels where they exist), :class:`GCNMethod` (BRP-NAS-style GCN in NumPy); perfsage itself
is :class:`PerfSageMethod`. The command line: ``perfsage evaluate --help``.
"""

from ._evaluate import EvaluationOptions, evaluate
from ._gcn import GCN_DEFAULTS, GCNMethod
from ._lookup import LookupMethod, OperatorLookupMethod
from ._method import Method
from ._methods import LogLinearMethod, PerfSageMethod, method_names
from ._metrics import accuracy, average_ranks, count_inversions, kendall_tau_b, mape, rmspe, spearman, within
from .._nnls import nnls
from ._splits import SPLIT_NAMES, EvaluationError, SplitError

__all__ = [
    "EvaluationError",
    "EvaluationOptions",
    "GCNMethod",
    "GCN_DEFAULTS",
    "LogLinearMethod",
    "LookupMethod",
    "OperatorLookupMethod",
    "Method",
    "PerfSageMethod",
    "SPLIT_NAMES",
    "SplitError",
    "accuracy",
    "average_ranks",
    "count_inversions",
    "evaluate",
    "kendall_tau_b",
    "mape",
    "method_names",
    "nnls",
    "rmspe",
    "spearman",
    "within",
]
