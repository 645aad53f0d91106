"""The ``perfsage`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Sequence

from ._core import Graph, PerfSageError
from ._graphs import load_tflite


def _node_rows(graph: Graph) -> List[Dict[str, Any]]:
    nodes = graph.nodes
    costs = graph.node_costs
    names = graph.op_names
    tensors: Dict[int, List[Dict[str, Any]]] = {}
    operators: Dict[int, List[Dict[str, Any]]] = {}
    rows = []
    for v in range(graph.num_nodes):
        s = int(nodes["subgraph"][v])
        if s not in tensors:
            tensors[s] = graph.tensors(s)
            operators[s] = graph.operators(s)
        op = operators[s][int(nodes["op_index"][v])]
        outputs = [tensors[s][t] for t in op["outputs"]]
        rows.append(
            {
                "index": v,
                "subgraph": s,
                "op": names[v],
                "output_shape": list(outputs[0]["shape"]) if outputs else [],
                "output_dtype": outputs[0]["dtype"] if outputs else "",
                "macs": int(costs["macs"][v]),
                "param_count": int(costs["param_count"][v]),
                "param_bytes": int(costs["param_bytes"][v]),
                "input_activation_bytes": int(costs["input_activation_bytes"][v]),
                "output_activation_bytes": int(costs["output_activation_bytes"][v]),
            }
        )
    return rows


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _print_table(graph: Graph, rows: List[Dict[str, Any]], out) -> None:
    headers = ["#", "op", "output shape", "MACs", "params (B)", "in act (B)", "out act (B)"]
    table = [
        [
            str(r["index"]) + (f" (sg{r['subgraph']})" if r["subgraph"] else ""),
            r["op"],
            "x".join(str(d) for d in r["output_shape"]) + f" {r['output_dtype']}",
            _human(r["macs"]),
            str(r["param_bytes"]),
            str(r["input_activation_bytes"]),
            str(r["output_activation_bytes"]),
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    right = {0, 3, 4, 5, 6}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(f"{graph.source}: {graph.num_nodes} operators, {graph.num_edges} edges", file=out)
    print(line(headers), file=out)
    print(line(["-" * w for w in widths]), file=out)
    for row in table:
        print(line(row), file=out)
    t = graph.totals
    print(file=out)
    print(
        f"total MACs {t['macs']:,} ({_human(t['macs'])}) | parameters {t['param_count']:,} "
        f"({t['param_bytes']:,} B) | peak activations {t['peak_activation_bytes']:,} B | "
        f"inputs {t['input_bytes']:,} B | outputs {t['output_bytes']:,} B | "
        f"longest path {t['longest_path']} ops",
        file=out,
    )


def _cmd_inspect(args: argparse.Namespace) -> int:
    reports = []
    for path in args.models:
        graph = load_tflite(path)
        rows = _node_rows(graph)
        if args.json:
            reports.append({"model": graph.source, "nodes": rows, "totals": graph.totals})
        else:
            _print_table(graph, rows, sys.stdout)
            if len(args.models) > 1:
                print()
    if args.json:
        json.dump(reports[0] if len(reports) == 1 else reports, sys.stdout, indent=2)
        print()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfsage", description="Predict latency, energy and memory of TFLite models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser("inspect", help="per-operator table of shapes, MACs and bytes, and graph totals")
    inspect.add_argument("models", nargs="+", metavar="MODEL.tflite")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    inspect.set_defaults(run=_cmd_inspect)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except PerfSageError as e:
        print(f"perfsage: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `perfsage inspect m.tflite | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
