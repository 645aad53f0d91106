"""Real models for perfsage's evaluation: Keras application architectures as full-integer int8 TFLite.

No perfsage search space produced these graphs, which is the point: they test whether a predictor
trained on sampled models carries over to architectures people deploy. Run by
scripts/build_real_models.sh; the subcommands run in different virtual environments:

* ``convert --out DIR`` (in ``.venv-tf``, which has TensorFlow): builds each catalogue model with
  ``weights=None`` (random initial weights, nothing downloaded), seeded, converts it with
  ``tf.lite.TFLiteConverter`` to full-integer int8 (int8 input and output, int8 kernels only)
  calibrated on seeded random inputs, and writes ``DIR/<name>.tflite``. Models already written
  are skipped; each conversion runs in its own process (``convert-one``) with a timeout, so a
  converter crash costs one model, not the run. Timings go to ``DIR/../conversion.jsonl``.
* ``check DIR`` (in perfsage's ``.venv``): every model loads with ``perfsage.load_tflite`` and is
  int8 throughout (every activation tensor int8; constants int8 weights or int32 biases), as Vela
  wants.
* ``shared-int8 DIR``: prints the full-integer models among DIR's ``.tflite`` files (no float
  tensor, not already compiled by Vela), one path a line; says on stderr why others are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple


def _load_perfsage_io() -> Any:
    """perfsage's file helpers (python/perfsage/_io.py, standard library only), loaded by path:
    ``convert`` runs in .venv-tf, where perfsage is not installed."""
    path = Path(__file__).resolve().parents[1] / "python" / "perfsage" / "_io.py"
    spec = importlib.util.spec_from_file_location("perfsage_io", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_io = _load_perfsage_io()

# Seconds one model's build + calibration + conversion may take before its process is killed.
CONVERT_TIMEOUT_S = 1800.0
# Calibration inputs per model: enough for every activation range, cheap for ResNet-50 at 224.
CALIBRATION_SAMPLES = 8
# Input value ranges each family's own preprocess_input produces (keras.applications docs):
# "tf" mode scales to [-1, 1]; MobileNetV3 and EfficientNet take raw [0, 255] pixels and rescale
# inside the model; ResNet-50 is "caffe" mode (BGR minus the ImageNet means 103.939, 116.779,
# 123.68); DenseNet is "torch" mode ((x/255 - mean) / std with means 0.406..0.485, stds 0.224..0.229).
TF_RANGE = (-1.0, 1.0)
PIXEL_RANGE = (0.0, 255.0)
CAFFE_RANGE = (-123.68, 255.0 - 103.939)
TORCH_RANGE = (-0.485 / 0.229, (1.0 - 0.406) / 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry: a keras.applications constructor, its options and the input size."""

    name: str
    family: str
    constructor: str
    resolution: int
    input_range: Tuple[float, float]
    options: Dict[str, Any] = field(default_factory=dict)


def _grid(family: str, constructor: str, alphas: Sequence[Optional[float]], resolutions: Sequence[int],
          input_range: Tuple[float, float], **options: Any) -> List[ModelSpec]:
    """Every (alpha, resolution) pair of one family; ``None`` alpha for constructors without one."""
    specs = []
    suffix = "_min" if options.get("minimalistic") else ""
    for alpha in alphas:
        for resolution in resolutions:
            width = {} if alpha is None else {"alpha": alpha}
            tag = "" if alpha is None else f"_a{alpha:g}"
            specs.append(ModelSpec(f"{family}{suffix}{tag}_r{resolution}", family, constructor, resolution,
                                   input_range, {**width, **options}))
    return specs


def catalogue() -> List[ModelSpec]:
    """The real-model set: 68 models. Width multipliers are those each constructor documents
    (MobileNet 0.25-1.0, MobileNetV2 0.35-1.4, MobileNetV3 0.75/1.0); the large networks
    (ResNet-50, DenseNet-121, NASNetMobile) at few sizes, since Vela takes longest on them."""
    return [
        *_grid("mobilenet_v1", "MobileNet", [0.25, 0.5, 0.75, 1.0], [96, 128, 160, 224], TF_RANGE),
        *_grid("mobilenet_v2", "MobileNetV2", [0.35, 0.5, 0.75, 1.0, 1.4], [96, 128, 160, 224], TF_RANGE),
        *_grid("mobilenet_v3_small", "MobileNetV3Small", [0.75, 1.0], [96, 128, 160, 224], PIXEL_RANGE),
        *_grid("mobilenet_v3_small", "MobileNetV3Small", [1.0], [128, 224], PIXEL_RANGE, minimalistic=True),
        *_grid("mobilenet_v3_large", "MobileNetV3Large", [0.75, 1.0], [96, 128, 160, 224], PIXEL_RANGE),
        *_grid("mobilenet_v3_large", "MobileNetV3Large", [1.0], [128, 224], PIXEL_RANGE, minimalistic=True),
        *_grid("efficientnet_b0", "EfficientNetB0", [None], [96, 128, 160, 192, 224], PIXEL_RANGE),
        *_grid("resnet50", "ResNet50", [None], [128, 224], CAFFE_RANGE),
        *_grid("nasnet_mobile", "NASNetMobile", [None], [96, 160, 224], TF_RANGE),
        *_grid("densenet121", "DenseNet121", [None], [128, 224], TORCH_RANGE),
    ]


def model_seed(base_seed: int, name: str) -> int:
    """A model's own seed: stable when the catalogue changes (it depends on the name, not a position)."""
    digest = hashlib.sha256(f"perfsage-real-models/{base_seed}/{name}".encode()).hexdigest()
    return int(digest[:8], 16)


# ----------------------------------------------------------------------------------------------
# Conversion (TensorFlow side)


def _representative_data(spec: ModelSpec, seed: int) -> Callable[[], Iterator[List[Any]]]:
    import numpy as np

    def samples() -> Iterator[List[Any]]:
        rng = np.random.default_rng(seed)
        low, high = spec.input_range
        for _ in range(CALIBRATION_SAMPLES):
            yield [rng.uniform(low, high, (1, spec.resolution, spec.resolution, 3)).astype(np.float32)]

    return samples


def convert_model(spec: ModelSpec, seed: int) -> Tuple[bytes, Dict[str, float]]:
    """Builds ``spec`` with random weights and converts it to full-integer int8 TFLite bytes;
    returns them with the seconds each step took."""
    import keras
    import tensorflow as tf

    seconds: Dict[str, float] = {}
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    # A fixed batch of 1, as deployed: with a free batch dimension the converter keeps a
    # SHAPE/STRIDED_SLICE/PACK chain of int32 tensors to compute the reshape before the classifier.
    inputs = keras.Input(shape=(spec.resolution, spec.resolution, 3), batch_size=1)
    model = getattr(keras.applications, spec.constructor)(input_tensor=inputs, weights=None, **spec.options)
    seconds["build"] = time.perf_counter() - start
    start = time.perf_counter()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_data(spec, seed)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    tflite = converter.convert()
    seconds["convert"] = time.perf_counter() - start
    return tflite, seconds


def _spec_by_name(name: str) -> ModelSpec:
    specs = {s.name: s for s in catalogue()}
    if name not in specs:
        raise SystemExit(f"real_models.py: no model {name!r} in the catalogue (see --list)")
    return specs[name]


def cmd_convert_one(args: argparse.Namespace) -> int:
    """Converts one catalogue model (in a process of its own) and prints its record as JSON."""
    spec = _spec_by_name(args.name)
    seed = model_seed(args.seed, spec.name)
    tflite, seconds = convert_model(spec, seed)
    out = Path(args.out) / f"{spec.name}.tflite"
    _io.atomic_write_bytes(out, tflite)
    import keras
    import tensorflow as tf

    record = {
        "name": spec.name, "family": spec.family, "constructor": spec.constructor, "resolution": spec.resolution,
        "options": spec.options, "input_range": spec.input_range, "seed": seed, "bytes": len(tflite),
        "seconds": {k: round(v, 2) for k, v in seconds.items()}, "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    print("RECORD " + json.dumps(record), flush=True)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Converts every catalogue model not yet written, each in its own process."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings = out.parent / "conversion.jsonl"
    specs = [s for s in catalogue() if not args.only or s.name in args.only]
    todo = [s for s in specs if not (out / f"{s.name}.tflite").exists()]
    print(f"{out}: {len(specs)} models in the catalogue, {len(specs) - len(todo)} already written, "
          f"converting {len(todo)}", flush=True)
    failures = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    for index, spec in enumerate(todo, 1):
        start = time.perf_counter()
        command = [sys.executable, __file__, "convert-one", spec.name, "--out", str(out), "--seed", str(args.seed)]
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, env=env)
        except subprocess.TimeoutExpired:
            failures.append(f"{spec.name}: no result within {args.timeout:g} s")
            print(f"[{index}/{len(todo)}] {spec.name}: timed out after {args.timeout:g} s", flush=True)
            continue
        wall = time.perf_counter() - start
        records = [line[len("RECORD "):] for line in run.stdout.splitlines() if line.startswith("RECORD ")]
        if run.returncode != 0 or not records:
            tail = (run.stderr or run.stdout).strip()[-1500:]
            failures.append(f"{spec.name}: exit status {run.returncode}: {tail}")
            print(f"[{index}/{len(todo)}] {spec.name}: FAILED (exit status {run.returncode})\n{tail}", flush=True)
            continue
        record = {**json.loads(records[-1]), "wall_seconds": round(wall, 2)}
        with open(timings, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"[{index}/{len(todo)}] {spec.name}: {record['bytes']:,} bytes; build {record['seconds']['build']:.1f} s, "
              f"convert {record['seconds']['convert']:.1f} s, {wall:.1f} s with process start", flush=True)
    if failures:
        print(f"{len(failures)} model(s) failed to convert:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------------------------
# Checks (perfsage side)


def _tensors(graph: Any) -> Iterator[Dict[str, Any]]:
    for subgraph in range(graph.num_subgraphs):
        yield from graph.tensors(subgraph)


def int8_problems(path: Path, strict: bool) -> List[str]:
    """Why the model at ``path`` is not what Vela compiles ([] when it is).

    Always: it loads with perfsage, holds no floating-point tensor and no ``ethos-u`` operator
    (a model Vela already compiled). ``strict`` (models this script converts): every activation
    tensor is int8 and every constant int8 (weights) or int32 (biases).
    """
    import perfsage

    try:
        graph = perfsage.load_tflite(str(path))
    except ValueError as e:
        return [f"does not load: {e}"]
    problems = []
    if "ethos-u" in graph.op_names:
        problems.append("already compiled by Vela (ethos-u custom operator)")
    kinds: Dict[str, int] = {}
    for tensor in _tensors(graph):
        dtype = str(tensor["dtype"])
        allowed = ("int8", "int32") if tensor["is_constant"] else ("int8",)
        bad = dtype.startswith(("float", "bfloat")) or (strict and dtype not in allowed)
        if bad:
            key = f"{'constant' if tensor['is_constant'] else 'activation'} {dtype}"
            kinds[key] = kinds.get(key, 0) + 1
    problems += [f"{count} {key} tensor(s)" for key, count in sorted(kinds.items())]
    return problems


def cmd_check(args: argparse.Namespace) -> int:
    files = sorted(Path(args.dir).glob("*.tflite"))
    if not files:
        print(f"real_models.py: no .tflite files in {args.dir}", file=sys.stderr)
        return 1
    expected = {f"{s.name}.tflite" for s in catalogue()}
    missing = sorted(expected - {f.name for f in files})
    bad = {f.name: int8_problems(f, strict=True) for f in files}
    bad = {name: problems for name, problems in bad.items() if problems}
    for name, problems in bad.items():
        print(f"{args.dir}/{name}: not full-integer int8: {'; '.join(problems)}", file=sys.stderr)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        print(f"{args.dir}: {len(missing)} catalogue model(s) not converted ({shown})", file=sys.stderr)
    print(f"{args.dir}: {len(files) - len(bad)} of {len(files)} models load with perfsage and are int8 throughout")
    return 1 if bad else 0


def cmd_shared_int8(args: argparse.Namespace) -> int:
    for path in sorted(Path(args.dir).glob("*.tflite")):
        problems = int8_problems(path, strict=False)
        if problems:
            print(f"skipping {path.name}: {'; '.join(problems)}", file=sys.stderr)
        else:
            print(path)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for spec in catalogue():
        print(f"{spec.name}\t{spec.constructor}({json.dumps(spec.options)}) {spec.resolution}x{spec.resolution}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="convert the catalogue models not yet written (needs TensorFlow)")
    convert.add_argument("--out", required=True, help="folder for the .tflite files")
    convert.add_argument("--seed", type=int, default=0, help="base seed of weights and calibration data")
    convert.add_argument("--timeout", type=float, default=CONVERT_TIMEOUT_S, help="seconds per model")
    convert.add_argument("--only", nargs="+", metavar="NAME", help="convert only these catalogue models")
    convert.set_defaults(run=cmd_convert)
    one = sub.add_parser("convert-one", help="convert one catalogue model (what convert runs per model)")
    one.add_argument("name")
    one.add_argument("--out", required=True)
    one.add_argument("--seed", type=int, default=0)
    one.set_defaults(run=cmd_convert_one)
    check = sub.add_parser("check", help="every model loads with perfsage and is int8 throughout")
    check.add_argument("dir")
    check.set_defaults(run=cmd_check)
    shared = sub.add_parser("shared-int8", help="print the full-integer int8 models of a folder")
    shared.add_argument("dir")
    shared.set_defaults(run=cmd_shared_int8)
    listing = sub.add_parser("list", help="print the catalogue")
    listing.set_defaults(run=cmd_list)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
