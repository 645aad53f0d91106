"""The ``perfsage`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
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


def _cmd_spaces(args: argparse.Namespace) -> int:
    from .spaces import spaces

    for name, space in spaces().items():
        print(f"{name}: {space.description}")
        for knob, choices in space.knobs.items():
            shown = ", ".join(str(c) for c in choices) if isinstance(choices, (list, tuple)) else str(choices)
            print(f"    {knob}: {shown}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ._writer import build_model, strip_weights
    from .spaces import sample

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items = sample(args.space, args.n, args.seed)
    manifest = out / "manifest.jsonl"
    failures = 0
    tmp = manifest.with_suffix(".jsonl.tmp")
    with open(tmp, "w") as lines:
        for index, item in enumerate(tqdm(items, desc=f"{args.space} ({args.dtype})", unit="model", file=sys.stderr)):
            name = f"{args.space}-{index:06d}.tflite"
            record = {"file": name, "index": index, "dtype": args.dtype, **item}
            try:
                model = build_model(item["spec"], seed=item["seed"], dtype=args.dtype)
                if args.strip:
                    model = strip_weights(model)
                (out / name).write_bytes(model)
            except PerfSageError as e:  # a space produced a spec the writer refuses: keep going
                failures += 1
                record = {**record, "file": None, "error": str(e)}
            lines.write(json.dumps(record, separators=(",", ":")) + "\n")
    tmp.replace(manifest)
    print(f"wrote {len(items) - failures} models to {out} (manifest: {manifest})", file=sys.stderr)
    if failures:
        print(f"perfsage: error: {failures} specs could not be built; see 'error' in {manifest}", file=sys.stderr)
        return 1
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

    spaces_cmd = sub.add_parser("spaces", help="list the search spaces and their knobs")
    spaces_cmd.set_defaults(run=_cmd_spaces)

    generate = sub.add_parser("generate", help="sample a search space and write TFLite models")
    generate.add_argument("--space", required=True, help="search space name (see `perfsage spaces`)")
    generate.add_argument("--n", type=int, required=True, help="number of models")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--dtype", choices=["int8", "float32"], default="int8")
    generate.add_argument("--out", required=True, help="output folder (manifest.jsonl lists spec and seed per model)")
    generate.add_argument("--strip", action="store_true", help="write weight-free models (see strip_weights)")
    generate.set_defaults(run=_cmd_generate)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (PerfSageError, ValueError) as e:
        print(f"perfsage: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `perfsage inspect m.tflite | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
