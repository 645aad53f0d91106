"""Per-operator labels from Vela: what each TFLite operator costs on the NPU.

Vela's ``--verbose-performance`` CSV has one row per *scheduled* operation, not per TFLite
operator: Vela lowers one TFLite operator into several (SOFTMAX into ~30 elementwise steps named
after its *input* tensor), adds zero-cost rows for fused activations, and removes some operators
(RESHAPE). Its names therefore do not identify the TFLite operator reliably.

Vela's debug database (``--enable-debug-db``, written as ``<network>_debug.xml``) does: its
``perf`` table has the same rows as the per-layer CSV (cycles, NPU cycles, MACs, access cycles
per memory) with a ``source_id``, its ``source`` table maps that id to ``ext_key``, the index of
the operator in the input model, and its ``perf_debug`` table has, per row, the bytes read and
written in each memory area for each kind of tensor (feature maps, weights, scales, LUTs). Per
TFLite operator, :func:`operator_costs` sums the rows traced to it:

* an operator Vela lowers into several operations gets their sum (SOFTMAX, MEAN, ...);
* a row with no source (an operation Vela added itself) is kept as *unattributed*: it counts in
  the graph's total, and the labels say how much of it there was;
* placement ``"cpu"``: every row of the operator is a ``Passthrough`` (Vela leaves it to the CPU;
  it costs nothing in Vela's estimate, whose latency is the NPU's); ``"npu"``: it has NPU rows;
  ``"none"``: no row at all (Vela removed it, e.g. RESHAPE, or merged it into another operation,
  whose operator then carries the cost).

:func:`check_totals` compares the sums with Vela's summary CSV (cycles and MACs exactly, bytes to
float rounding), so a change in Vela's outputs fails loudly instead of mislabelling.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

# Per-operator metrics (name -> unit) and the debug database's ``perf`` column behind each.
_PERF_COLUMNS: Dict[str, str] = {
    "cycles": "op_cycles",
    "npu_cycles": "npu_cycles",
    "macs": "mac_count",
    "sram_access_cycles": "Sram_ac",
    "dram_access_cycles": "Dram_ac",
    "onchip_flash_access_cycles": "OnChipFlash_ac",
    "offchip_flash_access_cycles": "OffChipFlash_ac",
}
# Memory areas of ``perf_debug``'s ``<Area><Purpose>_read`` / ``_write`` columns -> metric prefix.
_AREAS: Dict[str, str] = {"Sram": "sram", "Dram": "dram", "OnChipFlash": "onchip_flash",
                          "OffChipFlash": "offchip_flash"}
LAYER_METRICS: Dict[str, str] = {
    **{name: ("MACs" if name == "macs" else "cycles") for name in _PERF_COLUMNS},
    **{f"{prefix}_bytes": "bytes" for prefix in _AREAS.values()},
}
PLACEMENTS = ("npu", "cpu", "none")
_CPU_OPERATION = "Passthrough"


class DebugDatabaseError(ValueError):
    """Vela's debug database is missing, malformed, or not what this module knows."""


def read_tables(xml_text: str) -> Dict[str, List[Dict[str, str]]]:
    """The tables of a Vela ``_debug.xml``: name -> rows (column -> text)."""
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as exc:
        raise DebugDatabaseError(f"Vela's debug database is not readable XML ({exc})") from None
    tables = {}
    for table in root.iter("table"):
        text = (table.text or "").strip("\n")
        tables[table.get("name", "")] = list(csv.DictReader(io.StringIO(text))) if text else []
    for needed in ("perf", "source"):
        if needed not in tables:
            raise DebugDatabaseError(f"Vela's debug database has no {needed!r} table (it has: "
                                     f"{', '.join(sorted(tables)) or 'none'})")
    return tables


def _number(row: Dict[str, str], column: str, table: str) -> float:
    text = row.get(column)
    if text is None or text == "":
        return 0.0  # Vela leaves a column out, or empty, for a memory area an operation does not use
    try:
        return float(text)
    except ValueError:
        raise DebugDatabaseError(f"Vela's debug database, table {table!r}, column {column!r}: {text!r} is not a "
                                 "number") from None


@dataclass
class OperatorCosts:
    """Vela's costs per TFLite operator of one model.

    ``values[metric][i]`` is the cost of operator ``i`` of the model's first subgraph;
    ``placement[i]`` is one of ``PLACEMENTS``; ``unattributed[metric]`` is the cost of rows with no
    source operator; ``rows`` is the number of operations Vela scheduled.
    """

    values: Dict[str, np.ndarray]
    placement: List[str]
    rows: int
    unattributed: Dict[str, float] = field(default_factory=dict)

    def total(self, metric: str) -> float:
        """The model's value of an additive ``metric``: the operators' sum plus unattributed rows."""
        return float(self.values[metric].sum()) + self.unattributed.get(metric, 0.0)


def operator_costs(tables: Dict[str, List[Dict[str, str]]], num_ops: int) -> OperatorCosts:
    """Sums the debug database's rows per TFLite operator of a model with ``num_ops`` operators."""
    source_op: Dict[str, int] = {}
    for row in tables["source"]:
        try:
            source_op[row["id"]] = int(row["ext_key"])
        except (KeyError, ValueError):
            raise DebugDatabaseError(f"Vela's debug database, table 'source': row {row} has no operator index "
                                     "(ext_key)") from None
    traffic = {row.get("id"): row for row in tables.get("perf_debug", [])}
    values = {m: np.zeros(num_ops, dtype=np.float64) for m in LAYER_METRICS}
    unattributed = {m: 0.0 for m in LAYER_METRICS}
    npu_rows = np.zeros(num_ops, dtype=bool)
    cpu_rows = np.zeros(num_ops, dtype=bool)
    for row in tables["perf"]:
        costs = {m: _number(row, column, "perf") for m, column in _PERF_COLUMNS.items()}
        moved = traffic.get(row.get("id"), {})
        for area, prefix in _AREAS.items():
            costs[f"{prefix}_bytes"] = sum(_number(moved, column, "perf_debug") for column in moved
                                           if column.startswith(area) and column.endswith(("_read", "_write")))
        index = source_op.get(row.get("source_id", ""))
        if index is None:
            for m, v in costs.items():
                unattributed[m] += v
            continue
        if not 0 <= index < num_ops:
            raise DebugDatabaseError(f"Vela's debug database traces operation {row.get('name')!r} to operator "
                                     f"{index}, but the model has {num_ops} operators")
        for m, v in costs.items():
            values[m][index] += v
        if row.get("operator") == _CPU_OPERATION:
            cpu_rows[index] = True
        else:
            npu_rows[index] = True
    placement = ["npu" if npu_rows[i] else "cpu" if cpu_rows[i] else "none" for i in range(num_ops)]
    return OperatorCosts(values, placement, len(tables["perf"]), unattributed)


def check_totals(costs: OperatorCosts, totals: Dict[str, float], where: str) -> None:
    """Raises DebugDatabaseError unless the per-operator totals equal the summary's ``totals``
    (metric -> value): cycles and MACs exactly, bytes to float rounding."""
    for metric, expected in totals.items():
        got = costs.total(metric)
        tolerance = 1e-9 * max(1.0, abs(expected)) if LAYER_METRICS.get(metric) == "bytes" else 0.0
        if abs(got - expected) > tolerance:
            raise DebugDatabaseError(f"{where}: the operators' {metric} sum to {got:.17g}, Vela's summary says "
                                     f"{expected:.17g}")
