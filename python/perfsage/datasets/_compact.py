"""Compact and expanded copies of a dataset: one Parquet file, without or with the TFLite bytes."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from .._io import PathLike
from .._writer import build_model, strip_weights
from ._parquet import write_parquet_atomic
from ._reader import open_dataset
from ._schema import COMPACT_ZSTD_LEVEL, SHARD_ZSTD_LEVEL, DatasetError, arrow, make_schema


def compact_dataset(
    source: PathLike, out: PathLike, keep_tflite: bool = False, level: int = COMPACT_ZSTD_LEVEL
) -> Path:
    """Writes ``source`` as one Parquet file sorted by id, compressed with zstd at ``level``.

    Level 19 is slow but finds the repeats between specs that lower levels miss: it about halves a
    spec-only file against level 9 (measured in commit 768e4fe).

    Without ``keep_tflite`` the TFLite bytes are kept only for rows that no spec rebuilds (imported
    model files); everything else is rebuilt from spec + seed + dtype by :meth:`Dataset.graphs` or
    :func:`expand_dataset`. That is what makes a 20,000-model dataset small enough to version.
    """
    pa, _ = arrow()
    out = Path(out)
    if out.is_dir():
        raise DatasetError(f"{out}: is a directory; a compact dataset is one file")
    dataset = open_dataset(source)
    specs = dataset.table(tflite=False).column("spec").to_pylist()
    # The TFLite column of a 20,000-model dataset is gigabytes in memory (past a binary column's
    # 2 GiB offsets once concatenated), so it is only read when some row has no spec to rebuild from.
    need_tflite = keep_tflite or any(s is None for s in specs)
    table = dataset.table(tflite=need_tflite)
    if "tflite" not in table.column_names:
        position = table.schema.get_field_index("dtype") + 1
        table = table.add_column(position, "tflite", pa.nulls(table.num_rows, pa.binary()))
    elif not keep_tflite:
        values = table.column("tflite").to_pylist()
        kept = [b if s is None else None for b, s in zip(values, specs)]
        table = table.set_column(table.schema.get_field_index("tflite"), "tflite", pa.array(kept, pa.binary()))
    order = np.argsort(np.array(table.column("id").to_pylist(), dtype=str), kind="stable")
    table = table.take(pa.array(order))
    schema = make_schema(dataset._files.targets, compact=not keep_tflite)
    table = table.select(schema.names).cast(schema)
    write_parquet_atomic(table, out, level)
    return out


def expand_dataset(source: PathLike, out: PathLike, threads: int = 0) -> Tuple[Path, int]:
    """Writes ``source`` as one Parquet file with the ``tflite`` column rebuilt from the specs.

    Returns the path and the number of rows rebuilt. The writer is deterministic, so the rebuilt
    bytes equal those the labelling job stored.
    """
    pa, _ = arrow()
    out = Path(out)
    if out.is_dir():
        raise DatasetError(f"{out}: is a directory; an expanded dataset is one file")
    dataset = open_dataset(source)
    table = dataset.table(tflite=True)
    stored = table.column("tflite").to_pylist() if "tflite" in table.column_names else [None] * table.num_rows
    specs, seeds, dtypes = dataset.specs, dataset.seeds, table.column("dtype").to_pylist()
    rebuild = [i for i, b in enumerate(stored) if b is None and specs[i] is not None]

    def make(i: int) -> Optional[bytes]:
        try:
            return strip_weights(build_model(specs[i], seed=int(seeds[i] or 0), dtype=dtypes[i]))
        except ValueError:
            return None  # the spec never built (an error row of kind 'build')

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        for i, model in zip(rebuild, pool.map(make, rebuild)):
            stored[i] = model
    schema = make_schema(dataset._files.targets, compact=False)
    if "tflite" in table.column_names:
        table = table.drop_columns(["tflite"])
    table = table.add_column(schema.get_field_index("tflite"), "tflite", pa.array(stored, pa.binary()))
    table = table.select(schema.names).cast(schema)
    write_parquet_atomic(table, out, SHARD_ZSTD_LEVEL)
    return out, len(rebuild)
