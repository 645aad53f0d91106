"""Setting a dataset's damaged shards aside, so that the next labelling run labels their rows again.

A shard is damaged when a disk fills, a copy is cut short or a file is edited: the reader then
refuses the whole dataset, naming the shard. ``repair_dataset`` reads every shard in full and
renames each one that does not read to ``part-NNNNNN.parquet.damaged`` (kept, not deleted, for
whoever wants to look at it). The rows it held are then missing, so running the same
``perfsage dataset build`` or ``label`` command again labels them again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List

from .._io import PathLike
from ._parquet import open_parquet, read_columns, shard_files
from ._schema import MANIFEST_NAME, DatasetError, check_schema, read_manifest
from ._shard_writer import ShardWriter

DAMAGED_SUFFIX = ".damaged"


@dataclass(frozen=True)
class DamagedShard:
    """A shard set aside: where it was, where it is now, and why it did not read."""

    shard: Path
    moved_to: Path
    reason: str


def _free_name(shard: Path) -> Path:
    candidate = shard.with_name(shard.name + DAMAGED_SUFFIX)
    number = 1
    while candidate.exists():
        candidate = shard.with_name(f"{shard.name}{DAMAGED_SUFFIX}.{number}")
        number += 1
    return candidate


def repair_dataset(path: PathLike) -> List[DamagedShard]:
    """Renames every shard of the dataset directory ``path`` that does not read in full to
    ``<shard>.damaged``; returns what it set aside ([] when every shard reads).

    Holds the dataset's lock while it works, so it never races a labelling job. Raises
    :class:`DatasetError` for a path that is not a dataset directory (a single-file dataset has
    no shards to drop: rebuild it from its source instead).
    """
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: not a dataset directory; repair sets damaged shards of a directory aside "
                           "(a single-file dataset is rewritten whole: make it again from its source)")
    targets = read_manifest(path / MANIFEST_NAME)["targets"]
    damaged: List[DamagedShard] = []
    with ShardWriter(path, targets):
        for shard in shard_files(path):
            try:
                check_schema(shard, open_parquet(shard).schema_arrow)
                read_columns(shard, None)
            except DatasetError as e:
                moved = _free_name(shard)
                os.replace(shard, moved)
                damaged.append(DamagedShard(shard, moved, str(e)))
    return damaged
