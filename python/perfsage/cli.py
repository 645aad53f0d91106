"""The ``perfsage`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from tqdm import tqdm

from . import _adapt_cli, _predict_cli
from ._core import Graph, PerfSageError
from ._graphs import load_tflite
from ._io import __version__, atomic_write
from ._native import build_info
from ._targets import targets as list_targets
from ._writer import DTYPES, build_model, strip_weights
from .datasets import (
    build_dataset,
    compact_dataset,
    dataset_info,
    expand_dataset,
    format_info,
    import_csv,
    import_nb201,
    label_files,
    repair_dataset,
)
from .datasets._import import parse_metric
from .datasets._runner import RunnerError
from .labelers.vela import ACCELERATORS as VELA_ACCELERATORS
from .evaluation.cli import add_parser as _add_evaluate_parser
from .spaces import AFFINE, FLAT_INPUTS, FLOAT_SECTIONS, STEMS, WEIGHTS, sample, spaces
from .spaces._affine import MAX_BATCH_NORMS
from .spaces._float_sections import MAX_SECTION_LAYERS


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
    for name, space in spaces().items():
        print(f"{name}: {space.description}")
        for knob, choices in space.knobs.items():
            shown = ", ".join(str(c) for c in choices) if isinstance(choices, (list, tuple)) else str(choices)
            print(f"    {knob}: {shown}")
    print("\nweights (`perfsage dataset build --weights`, `perfsage.sample(..., weights=...)`): uniform (every "
          "model Glorot-uniform, as freshly initialised; default), mixed (per sample, from its seed: a third "
          "uniform, a third trained-like normal or laplace values, a third pruned to sparsity 0.3-0.95) or trained "
          "(per sample: normal, laplace or heavy-tailed student_t values, a quarter pruned, half with dense layers "
          "quantised per tensor, as trained and converted models carry them), the spec's \"weights\" field; Vela "
          "compresses trained and pruned weights")
    print("float sections (`perfsage dataset build --float-sections`, `perfsage.sample(..., float_sections=...)`): "
          "none (default) or mixed (per sample, from its seed: a third as drawn, two thirds with one or two runs "
          f"of up to {MAX_SECTION_LAYERS} layers between added dequantize and quantize layers, written in float32 "
          "inside the quantized model); the Ethos-U leaves such layers to the CPU")
    print("affine layers (`perfsage dataset build --affine`, `perfsage.sample(..., affine=...)`): none (default) or "
          "mixed (per sample, from its seed: a third as drawn, two thirds with input normalisation (Keras Rescaling "
          f"or Normalization), 1-{MAX_BATCH_NORMS} unfolded batch norms or both: mul, add and sub layers with scalar "
          "or per-channel constant operands, which converters leave standalone and Vela prices apart)")
    print("depthwise stems (`perfsage dataset build --stems`, `perfsage.sample(..., stems=...)`): none (default) or "
          "mixed (per sample, from its seed: half of the specs with a conv2d on a one-channel input get it as the "
          "depthwise_conv2d with depth_multiplier = filters that converters write for it)")
    print("flat inputs (`perfsage dataset build --flat-inputs`, `perfsage.sample(..., flat_inputs=...)`): none "
          "(default) or mixed (per sample, from its seed: half of the specs with an input of rank 3 or more get "
          "every such input as a flat [batch, elements] vector and a reshape to its shape, as converters write "
          "models whose input is a flat vector)")
    return 0


def _accuracy_text(accuracy: Dict[str, Dict[str, Any]]) -> str:
    return ", ".join(f"{metric} {100 * score['mape']:.2f}%" for metric, score in accuracy.items()) or "-"


def _clock_text(hz: Any) -> str:
    return f"{hz / 1e6:g} MHz" if isinstance(hz, (int, float)) and hz == hz else "-"


def _cmd_targets(args: argparse.Namespace) -> int:
    entries = list_targets()
    if args.json:
        json.dump(entries, sys.stdout, indent=2)
        print()
        return 0
    headers = ["target", "predictor", "tool", "accelerator", "system config", "memory mode", "clock",
               "held-out MAPE"]
    table = []
    for e in entries:
        st = e["settings"]
        tool = f"{st.get('tool', '-')} {st.get('tool_version') or '(not installed)'}" if st else "-"
        table.append([e["target"], "shipped" if e["predictor"] else "-", tool, st.get("accelerator_config", "-"),
                      st.get("system_config", "-"), st.get("memory_mode", "-"), _clock_text(st.get("core_clock_hz")),
                      _accuracy_text(e["accuracy"])])
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    for row in [headers, ["-" * w for w in widths]] + table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print("\nheld-out MAPE: the shipped predictor on the 10% of its data set aside before training "
          "(`perfsage targets --json` has the share within 10% and the split); labellers without a predictor "
          "make labels for training your own (`perfsage dataset build --target NAME`).")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    # An unknown space is refused before the folder is looked at.
    items = sample(args.space, args.n, args.seed, args.dtype)
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()):
        held = sorted(p.name for p in out.iterdir())
        raise ValueError(
            f"{out}: not empty (it holds {', '.join(held[:3])}{', ...' if len(held) > 3 else ''}; {len(held)} "
            "entries); generate writes into a new or empty folder so that its manifest.jsonl lists exactly the "
            "models in it: choose another --out, or empty this one")
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.jsonl"
    failures = 0

    def write_manifest(tmp: Path) -> None:
        nonlocal failures
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

    atomic_write(manifest, write_manifest)
    print(f"wrote {len(items) - failures} models to {out} (manifest: {manifest})", file=sys.stderr)
    if failures:
        print(f"perfsage: error: {failures} specs could not be built; see 'error' in {manifest}", file=sys.stderr)
        return 1
    return 0


def _labeler_options(args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """``--labeler-option [TARGET:]KEY=VALUE`` items -> ``{target or "*": {key: value}}``; values
    are JSON when they parse as JSON (numbers, true, null), strings otherwise. ``--per-operator``
    asks every target for per-operator labels, which only the Vela targets give."""
    options: Dict[str, Dict[str, Any]] = {}
    if args.per_operator:
        others = [t for t in args.target if t not in VELA_ACCELERATORS]
        if others:
            raise ValueError(f"--per-operator: {', '.join(others)} gives no per-operator labels (the Vela targets "
                             f"do: {', '.join(VELA_ACCELERATORS)})")
        for target in args.target:
            options.setdefault(target, {})["per_operator"] = True
    pairs: Sequence[str] = args.labeler_option
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--labeler-option {pair!r}: expected [TARGET:]KEY=VALUE")
        target, colon, name = key.rpartition(":")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        options.setdefault(target if colon else "*", {})[name] = value
    return options


PER_OPERATOR_HELP = ("also store each operator's labels (Vela targets: cycles, MACs, bytes per memory, latency, "
                     "energy and placement per operator, summing to the model's labels)")


def _labelling_job(out: str, job: Any) -> int:
    """Runs ``job()`` (a labelling job returning a BuildSummary) with the command line's exit codes:
    0 when complete, 1 when not or when workers cannot run, 130 when interrupted."""
    try:
        summary = job()
    except KeyboardInterrupt:
        print(f"perfsage: interrupted; the rows labelled so far are in {out}: run the same command to resume",
              file=sys.stderr)
        return 130
    except RunnerError as e:
        print(f"perfsage: error: {e}", file=sys.stderr)
        return 1
    return 0 if summary.complete else 1


def _cmd_dataset_build(args: argparse.Namespace) -> int:
    return _labelling_job(args.out, lambda: build_dataset(
        args.out,
        args.space,
        args.n,
        args.target,
        seed=args.seed,
        dtype=args.dtype,
        weights=args.weights,
        float_sections=args.float_sections,
        affine=args.affine,
        stems=args.stems,
        flat_inputs=args.flat_inputs,
        workers=args.workers,
        timeout=args.timeout,
        executor=args.executor,
        scheduler=args.scheduler,
        chunk_size=args.chunk_size,
        retry_errors=args.retry_errors,
        flush_rows=args.flush_rows,
        flush_seconds=args.flush_seconds,
        labeler_options=_labeler_options(args),
        progress=not args.no_progress,
    ))


def _cmd_dataset_label(args: argparse.Namespace) -> int:
    return _labelling_job(args.out, lambda: label_files(
        args.out,
        args.models,
        args.target,
        space=args.space,
        workers=args.workers,
        timeout=args.timeout,
        retry_errors=args.retry_errors,
        labeler_options=_labeler_options(args),
        progress=not args.no_progress,
    ))


def _cmd_dataset_info(args: argparse.Namespace) -> int:
    info = dataset_info(args.dataset, op_types=args.ops, threads=args.threads)
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
    else:
        print(format_info(info))
    return 0


def _cmd_dataset_import_nb201(args: argparse.Namespace) -> int:
    out = import_nb201(args.out, args.csv, tflite=not args.compact, limit=args.limit, threads=args.threads,
                       executed=not args.pruned,
                       progress=not args.no_progress)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_dataset_import_csv(args: argparse.Namespace) -> int:
    metrics = dict(parse_metric(m) for m in args.metric)
    out = import_csv(
        args.csv, args.target, metrics, args.out,
        model_column=args.model_column, spec_column=args.spec_column, seed_column=args.seed_column,
        dtype=args.dtype, dtype_column=args.dtype_column, space=args.space, space_column=args.space_column,
        name_column=args.name_column, description=args.description, tflite=not args.compact,
        threads=args.threads, progress=not args.no_progress,
    )
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_dataset_compact(args: argparse.Namespace) -> int:
    out = compact_dataset(args.dataset, args.out, keep_tflite=args.keep_tflite, level=args.level)
    print(f"wrote {out} ({out.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


def _cmd_dataset_expand(args: argparse.Namespace) -> int:
    out, rebuilt = expand_dataset(args.dataset, args.out, threads=args.threads)
    print(f"wrote {out}: rebuilt the TFLite of {rebuilt} rows from their specs", file=sys.stderr)
    return 0


def _cmd_dataset_repair(args: argparse.Namespace) -> int:
    damaged = repair_dataset(args.dataset)
    for d in damaged:
        print(f"set aside {d.shard} as {d.moved_to.name}: {d.reason}", file=sys.stderr)
    if damaged:
        print(f"{len(damaged)} damaged shard(s) set aside; run the build or label command that made {args.dataset} "
              "again to label their rows again", file=sys.stderr)
    else:
        print(f"{args.dataset}: every shard reads; nothing to repair", file=sys.stderr)
    return 0


def _add_dataset_commands(sub: Any) -> None:
    dataset = sub.add_parser(
        "dataset", help="build, import and inspect labelled datasets (Parquet)",
        description="Labelled datasets: one row per model, with its spec or TFLite bytes and one column per "
        "target and metric. `perfsage dataset COMMAND --help` describes each command.")
    commands = dataset.add_subparsers(dest="dataset_command", required=True)

    build = commands.add_parser(
        "build",
        help="sample search spaces and label the models on targets (resumable)",
        description="Labels N models of each search space on each target into a directory of Parquet "
        "shards. Running the same command again after a kill labels only the models still missing.",
    )
    build.add_argument("--space", action="append", required=True, help="search space (repeat for several)")
    build.add_argument("--n", type=int, required=True, help="models per space")
    build.add_argument("--target", action="append", required=True,
                       help="labeller, e.g. ethos-u55-256 or host-cpu (repeat for several)")
    build.add_argument("--out", required=True, help="dataset directory (created; resumed when it exists)")
    build.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    build.add_argument("--dtype", choices=list(DTYPES), default="int8",
                       help="model type: int8 (full-integer, what NPUs run; default), float32 or int16x8 "
                            "(int16 activations, int8 weights)")
    build.add_argument("--weights", choices=list(WEIGHTS), default="uniform",
                       help="weight values: uniform (Glorot-uniform, as freshly initialised; default), mixed "
                            "(a third each uniform, trained-like normal/laplace, and pruned to sparsity 0.3-0.95) "
                            "or trained (normal, laplace or student_t, a quarter pruned, half with dense layers "
                            "quantised per tensor; see `perfsage spaces`)")
    build.add_argument("--float-sections", choices=list(FLOAT_SECTIONS), default="none",
                       help="none (every layer quantized; default) or mixed (two thirds of the models with one or "
                            "two runs of layers left in float32 between DEQUANTIZE and QUANTIZE, as converters leave "
                            "what they do not quantize; see `perfsage spaces`)")
    build.add_argument("--affine", choices=list(AFFINE), default="none",
                       help="none (default) or mixed (two thirds of the models with input normalisation or unfolded "
                            "batch norms: mul, add and sub layers with constant operands; see `perfsage spaces`)")
    build.add_argument("--stems", choices=list(STEMS), default="none",
                       help="none (default) or mixed (half of the models with a conv2d on a one-channel input get "
                            "it as a depthwise conv2d with depth multiplier = filters, as converters write it; see "
                            "`perfsage spaces`)")
    build.add_argument("--flat-inputs", choices=list(FLAT_INPUTS), default="none",
                       help="none (default) or mixed (half of the models with an input of rank 3 or more get it as "
                            "a flat vector and a reshape, as converters write such models; see `perfsage spaces`)")
    build.add_argument("--workers", type=int, default=0, help="local worker processes (default: every core)")
    build.add_argument("--timeout", type=float, default=600.0,
                       help="seconds one model may take (build + all labels) before its worker is killed")
    build.add_argument("--executor", choices=["local", "dask"], default="local",
                       help="where models are labelled: local worker processes (default) or a Dask cluster")
    build.add_argument("--scheduler", help="Dask scheduler address (with --executor dask), e.g. tcp://host:8786")
    build.add_argument("--chunk-size", type=int, default=16, help="models per Dask task (default 16)")
    build.add_argument("--retry-errors", action="store_true", help="label again the rows stored with an error")
    build.add_argument("--flush-rows", type=int, default=200, help="write a shard every this many rows")
    build.add_argument("--flush-seconds", type=float, default=5.0,
                       help="... or every this many seconds (a kill loses at most the rows since)")
    build.add_argument("--labeler-option", action="append", default=[], metavar="[TARGET:]KEY=VALUE",
                       help="option for the labellers (all, or TARGET's), e.g. host-cpu:min_repeats=50 or "
                       "ethos-u55-256:optimise=Size")
    build.add_argument("--per-operator", action="store_true", help=PER_OPERATOR_HELP)
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(run=_cmd_dataset_build)

    label = commands.add_parser(
        "label",
        help="label .tflite files (e.g. real models) on targets (resumable)",
        description="Labels model files, or every *.tflite in the directories given, on each target into a "
        "directory of Parquet shards (rows named by file stem). Running it again labels only the files "
        "whose bytes the dataset does not hold; a file that is not valid TFLite becomes an error row.",
    )
    label.add_argument("models", nargs="+", metavar="FILE_OR_DIR", help=".tflite files or directories of them")
    label.add_argument("--target", action="append", required=True,
                       help="labeller, e.g. ethos-u55-256 or host-cpu (repeat for several)")
    label.add_argument("--out", required=True, help="dataset directory (created; resumed when it exists)")
    label.add_argument("--space", default="real", help="space name stored in every row (default: real)")
    label.add_argument("--workers", type=int, default=0, help="local worker processes (default: every core)")
    label.add_argument("--timeout", type=float, default=600.0,
                       help="seconds one model may take (all labels) before its worker is killed")
    label.add_argument("--retry-errors", action="store_true", help="label again the rows stored with an error")
    label.add_argument("--labeler-option", action="append", default=[], metavar="[TARGET:]KEY=VALUE",
                       help="option for the labellers (all, or TARGET's), as for dataset build")
    label.add_argument("--per-operator", action="store_true", help=PER_OPERATOR_HELP)
    label.add_argument("--no-progress", action="store_true", help="no progress bar")
    label.set_defaults(run=_cmd_dataset_label)

    info = commands.add_parser(
        "info", help="rows, spaces, targets, units, label ranges and errors of a dataset",
        description="Summarises a dataset: rows per space, targets and their labeller settings, units, "
        "the range of each label column, and errors by kind.")
    info.add_argument("dataset", metavar="DATASET", help="a dataset directory or .parquet file")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--ops", action="store_true",
                      help="also count the labelled models holding each TFLite operator type (reads every model: "
                      "a compact dataset's are rebuilt from their specs)")
    info.add_argument("--threads", type=int, default=0, help="threads reading models for --ops (default: every core)")
    info.set_defaults(run=_cmd_dataset_info)

    nb201 = commands.add_parser(
        "import-nb201", help="import NAS-Bench-201 latencies measured on four devices",
        description="Imports the NAS-Bench-201 latency table (one row per cell, latencies measured on four "
        "devices) as a dataset, with each cell's network rebuilt as a float TFLite model.")
    nb201.add_argument("--csv", help="latency CSV (default: $PERFSAGE_DATA/nasbench201/latency.csv)")
    nb201.add_argument("--out", required=True, help="output .parquet file")
    nb201.add_argument("--compact", action="store_true", help="no TFLite column (graphs rebuilt from specs)")
    nb201.add_argument("--limit", type=int, help="import only the first LIMIT rows")
    nb201.add_argument("--pruned", action="store_true",
                       help="graphs with dead edges pruned (as TensorFlow's converter would) instead of every edge "
                            "executed (as NAS-Bench-201's PyTorch code runs them, what the devices timed)")
    nb201.add_argument("--threads", type=int, default=0, help="threads building graphs (default: every core)")
    nb201.add_argument("--no-progress", action="store_true", help="no progress bar")
    nb201.set_defaults(run=_cmd_dataset_import_nb201)

    imp = commands.add_parser(
        "import-csv",
        help="import your own measurements: a CSV of models (files or specs) and metric columns",
        description="Each CSV row names a model by a .tflite path (--model-column, relative to the CSV) or "
        "a spec JSON (--spec-column) and carries metric columns (--metric COLUMN=UNIT).",
    )
    imp.add_argument("csv", metavar="CSV", help="the CSV file of measurements (first line: column names)")
    imp.add_argument("--target", required=True, help="name of your device, e.g. my-board")
    imp.add_argument("--out", required=True, help="output .parquet file")
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-column", help="column with .tflite paths")
    source.add_argument("--spec-column", help="column with spec JSON")
    imp.add_argument("--seed-column", help="column with the writer seed of each spec (default: 0)")
    dtype = imp.add_mutually_exclusive_group()
    dtype.add_argument("--dtype", help="dtype of every model (specs: int8 or float32; default int8 for specs, "
                       "the input type for model files)")
    dtype.add_argument("--dtype-column", help="column with each row's dtype")
    imp.add_argument("--metric", action="append", required=True, metavar="COLUMN=UNIT",
                     help="a metric column and its unit, e.g. latency_ms=ms (repeat for several)")
    imp.add_argument("--space", default="imported", help="space name to record (default: imported)")
    imp.add_argument("--space-column", help="column with each row's space name")
    imp.add_argument("--name-column", help="column with each row's model name")
    imp.add_argument("--description", help="free text stored with the target's settings (device, runtime, ...)")
    imp.add_argument("--compact", action="store_true", help="no TFLite for spec rows (rebuilt on demand)")
    imp.add_argument("--threads", type=int, default=0, help="threads reading and building models (default: every core)")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(run=_cmd_dataset_import_csv)

    compact = commands.add_parser(
        "compact", help="one small Parquet file: spec + seed + labels, no TFLite bytes",
        description="Writes a dataset as one Parquet file without the TFLite bytes of rows that a spec rebuilds "
        "(Dataset.graphs() and `perfsage dataset expand` rebuild them), small enough to version.")
    compact.add_argument("dataset", metavar="DATASET", help="a dataset directory or .parquet file")
    compact.add_argument("--out", required=True, help="output .parquet file")
    compact.add_argument("--keep-tflite", action="store_true", help="keep the TFLite column (merge shards only)")
    compact.add_argument("--level", type=int, default=19, help="zstd level (default 19: slow, smallest)")
    compact.set_defaults(run=_cmd_dataset_compact)

    expand = commands.add_parser(
        "expand", help="rebuild the TFLite column of a compact dataset from its specs",
        description="Writes a compact dataset as one Parquet file with the TFLite bytes of every row rebuilt "
        "from its spec, seed and dtype (the writer is deterministic: the bytes the labelling job stored).")
    expand.add_argument("dataset", metavar="DATASET", help="a compact dataset (.parquet file)")
    expand.add_argument("--out", required=True, help="output .parquet file")
    expand.add_argument("--threads", type=int, default=0, help="threads rebuilding models (default: every core)")
    expand.set_defaults(run=_cmd_dataset_expand)

    repair = commands.add_parser(
        "repair", help="set damaged (truncated or corrupt) shards aside so that a resumed job labels their rows again",
        description="Reads every shard of a dataset directory in full and renames each one that does not read "
        "to part-NNNNNN.parquet.damaged. The dataset then reads without those rows; running the build or label "
        "command that made it again labels them again.")
    repair.add_argument("dataset", metavar="DATASET", help="a dataset directory (of part-NNNNNN.parquet shards)")
    repair.set_defaults(run=_cmd_dataset_repair)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfsage", description="Predict latency, energy and memory of TFLite models."
    )
    parser.add_argument("--version", action="version",
                        version=f"perfsage {__version__} (core built for {build_info()['isa']})")
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser(
        "inspect", help="per-operator table of shapes, MACs and bytes, and graph totals",
        description="Reads each model with perfsage's TFLite reader and prints one row per operator (output "
                    "shape and dtype, MACs, parameter and activation bytes) and the graph's totals.")
    inspect.add_argument("models", nargs="+", metavar="MODEL.tflite", help=".tflite files to read")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    inspect.set_defaults(run=_cmd_inspect)

    spaces_cmd = sub.add_parser(
        "spaces", help="list the search spaces and their knobs",
        description="Lists the search spaces that `perfsage generate` and `perfsage dataset build` sample, "
                    "with the choices of each knob.")
    spaces_cmd.set_defaults(run=_cmd_spaces)

    targets_cmd = sub.add_parser(
        "targets", help="the shipped predictors and labellers, the hardware they assume, and their accuracy",
        description="Lists every shipped predictor and every labeller with the settings behind its labels "
                    "(tool and version, accelerator, system config, memory mode, clock) and the shipped "
                    "predictor's accuracy on held-out models (from its provenance).")
    targets_cmd.add_argument("--json", action="store_true",
                             help="print JSON: metrics and units, all settings, accuracy and training data")
    targets_cmd.set_defaults(run=_cmd_targets)

    generate = sub.add_parser(
        "generate", help="sample a search space and write TFLite models",
        description="Samples N specs of a search space and writes DIR/<space>-<index>.tflite for each, and "
                    "DIR/manifest.jsonl with the spec and seed of every model. DIR must be new or empty.")
    generate.add_argument("--space", required=True, help="search space name (see `perfsage spaces`)")
    generate.add_argument("--n", type=int, required=True, help="number of models")
    generate.add_argument("--seed", type=int, default=0,
                          help="sampling seed (default 0): the same space, n and seed give the same models")
    generate.add_argument("--dtype", choices=list(DTYPES), default="int8",
                          help="int8 (full-integer, as TensorFlow's converter writes them; default), float32 or "
                               "int16x8 (int16 activations, int8 weights)")
    generate.add_argument("--out", required=True, metavar="DIR",
                          help="output folder, new or empty (manifest.jsonl lists spec and seed per model)")
    generate.add_argument("--strip", action="store_true", help="write weight-free models (see strip_weights)")
    generate.set_defaults(run=_cmd_generate)

    _predict_cli.add_parser(sub)
    _adapt_cli.add_parser(sub)
    _add_dataset_commands(sub)
    _add_evaluate_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # e.g. `perfsage inspect m.tflite | head`
        return 0
    except (PerfSageError, ValueError, OSError) as e:
        print(f"perfsage: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
