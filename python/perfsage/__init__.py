"""perfsage: predict latency, energy and memory of TFLite models on edge hardware.

Reading models::

    import perfsage
    g = perfsage.load_tflite("model.tflite")        # or bytes
    g.node_features, g.edge_index, g.graph_features  # numpy views, columns named below
    perfsage.node_feature_names(), perfsage.graph_feature_names()
    graphs = perfsage.load_many(paths, threads=0)   # all cores, GIL released
    g = perfsage.spec_graph(spec)                   # a spec's graph, no weights or TFLite written

Predicting and training::

    p = perfsage.Predictor(targets=["ethos-u55-256/latency_ms"])
    p.fit("kws.parquet", epochs=100)                # or (graphs, labels)
    p.predict(graphs)                               # float32 [n, targets]
    p.save("kws.psage"); p = perfsage.load_predictor("kws.psage")
    perfsage.targets()    # shipped predictors and labellers: hardware settings, held-out accuracy

The C++ core comes in a baseline x86-64 build and an x86-64-v3 (AVX2/FMA) build; the second is used
when the CPU has it. ``PERFSAGE_ISA=baseline|x86-64-v3|auto`` forces the choice;
``perfsage.build_info()`` says which build runs.
"""

# _native goes first: it loads the core built for this CPU as perfsage._core, which the imports
# below and every module of the package use.
from ._native import build_info
from . import _core
from ._core import FEATURE_SCHEMA_VERSION, Graph, PerfSageError
from ._graphs import (
    graph_feature_names,
    load_many,
    load_tflite,
    node_feature_names,
    op_vocabulary,
)
from . import spaces
from ._predictor import (NETWORK_DEFAULTS, TRAINING_DEFAULTS, Explanation, Predictor, load_predictor, shipped_bases,
                         shipped_predictors)
from ._targets import targets
from ._io import __version__
from ._writer import build_model, nb201_model, spec_graph, spec_graphs, strip_weights
from .spaces import sample

__all__ = [
    "Explanation",
    "FEATURE_SCHEMA_VERSION",
    "NETWORK_DEFAULTS",
    "Graph",
    "PerfSageError",
    "Predictor",
    "TRAINING_DEFAULTS",
    "__version__",
    "build_info",
    "build_model",
    "graph_feature_names",
    "load_many",
    "load_predictor",
    "load_tflite",
    "nb201_model",
    "node_feature_names",
    "op_vocabulary",
    "sample",
    "shipped_bases",
    "shipped_predictors",
    "spaces",
    "spec_graph",
    "spec_graphs",
    "strip_weights",
    "targets",
]
