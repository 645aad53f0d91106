"""Labelled datasets: build them (label sampled models on targets), import measurements, read them.

::

    from perfsage.datasets import build_dataset, open_dataset
    build_dataset("kws.parquet", "kws", n=5000, targets=["ethos-u55-256"])   # resumable
    ds = open_dataset("kws.parquet")                 # a shard directory or one .parquet file
    y = ds.labels(["ethos-u55-256/latency_ms"])      # float64 [rows, 1], NaN on error rows
    graphs = ds.graphs()                             # perfsage.Graph per row (None if unbuildable)

Model files (real models) are labelled with ``label_files``. The same from the command line:
``perfsage dataset build|label|info|import-nb201|import-csv|compact|expand|repair``. The storage format
is described in ``perfsage.datasets._schema``; content ids in ``perfsage.datasets._ids``; the
killable worker pool in ``perfsage.datasets._runner``.
"""

from ._build import BuildSummary, build_dataset, plan
from ._files import label_files
from ._ids import canonical_spec, content_id, model_id, spec_id
from ._import import import_csv, import_nb201
from ._info import dataset_info, format_info
from ._repair import DamagedShard, repair_dataset
from ._runner import RunnerError, run_dask, run_local
from ._compact import compact_dataset, expand_dataset
from ._reader import Dataset, open_dataset
from ._schema import ERROR_KINDS, FORMAT_NAME, FORMAT_VERSION, DatasetError
from ._shard_writer import ShardWriter

__all__ = [
    "BuildSummary",
    "DamagedShard",
    "Dataset",
    "DatasetError",
    "ERROR_KINDS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "RunnerError",
    "ShardWriter",
    "build_dataset",
    "canonical_spec",
    "compact_dataset",
    "content_id",
    "dataset_info",
    "expand_dataset",
    "format_info",
    "import_csv",
    "import_nb201",
    "label_files",
    "model_id",
    "open_dataset",
    "plan",
    "repair_dataset",
    "run_dask",
    "run_local",
    "spec_id",
]
