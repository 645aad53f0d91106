"""Real models for perfsage's evaluation: architectures people deploy, as quantised TFLite.

No perfsage search space produced these graphs, which is the point: they test whether a predictor
trained on sampled models carries over to architectures people deploy. They are for evaluation
only: never train on them. Run by scripts/build_real_models.sh; the subcommands run in different
virtual environments, and nothing in this file imports a framework:

* ``convert --out DIR --framework F...`` (in the framework's environment: ``.venv-tf`` for
  ``keras-app`` and ``keras-audio``, ``.venv-torch`` for ``torch``): converts each catalogue model
  of those frameworks not yet written with the framework's converter script (``CONVERTERS``), one
  process for as many models as it survives (importing TensorFlow or PyTorch costs about as much
  as converting a small model): a model that raises, crashes the process or outlasts the timeout
  costs that model, not the run (``run_converter``). The converter builds the model with random
  weights (nothing is downloaded), seeded, and converts it to quantised TFLite calibrated on
  seeded random inputs. Per model, its record (options, seed, framework versions, seconds) goes
  to ``DIR/../conversion.jsonl``; a model that fails goes to ``DIR/../conversion-failures.jsonl``
  with the error, and is not tried again unless ``--retry-failed``.
* ``check DIR`` (in perfsage's ``.venv``): every model loads with ``perfsage.load_tflite`` and holds
  only the tensor types its quantisation scheme allows (``QUANTIZATION``), as Vela wants.
* ``shared-int8 DIR``: prints the full-integer models among DIR's ``.tflite`` files (no float
  tensor, not already compiled by Vela), one path a line; says on stderr why others are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple


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

# Seconds one model's build + calibration + conversion may take before its converter is killed.
CONVERT_TIMEOUT_S = 1800.0
# Calibration inputs per model: enough for every activation range, cheap for ResNet-50 at 224.
CALIBRATION_SAMPLES = 8
# Input value ranges each family's own preprocess_input produces (keras.applications docs):
# "tf" mode scales to [-1, 1]; MobileNetV3, EfficientNet(V2), RegNet and ConvNeXt take raw
# [0, 255] pixels and rescale inside the model; ResNet-50/101 are "caffe" mode (BGR minus the
# ImageNet means 103.939, 116.779, 123.68); DenseNet and torchvision's models are "torch" mode
# ((x/255 - mean) / std with means 0.406..0.485, stds 0.224..0.229).
TF_RANGE = (-1.0, 1.0)
PIXEL_RANGE = (0.0, 255.0)
CAFFE_RANGE = (-123.68, 255.0 - 103.939)
TORCH_RANGE = (-0.485 / 0.229, (1.0 - 0.406) / 0.225)
# Audio front ends: log-mel / MFCC features (as the TFLM micro_speech and MLPerf Tiny KWS
# pipelines scale them) and raw waveforms in [-1, 1].
FEATURE_RANGE = (-10.0, 10.0)
WAVE_RANGE = (-1.0, 1.0)

# The converter script each framework's models run through, in that framework's environment.
CONVERTERS = {
    "keras-app": "real_models_keras.py",
    "keras-audio": "real_models_keras.py",
    "torch": "real_models_torch.py",
}

# Tensor types each quantisation scheme leaves in a model: (activations, constants).
# "int8": full integer, as Vela wants it.
# "int8-audio": full integer; LSTM keeps its cell state in int16, and the converter types the
#   LSTM's intermediate tensors (gate scales the kernels never read) float32.
# "16x8": int16 activations, int8 weights, int64 biases (int32 for LSTM gates), as int8 above
#   for LSTM.
# "int8-islands": int8 operators, with float islands between DEQUANTIZE and QUANTIZE where the
#   quantiser left an operator in float (ConvNeXt's layer norms; in PT2E exports from
#   litert-torch, operators its quantiser has no annotator for), which Vela places on the CPU.
QUANTIZATION = {
    "int8": (("int8",), ("int8", "int32")),
    "int8-audio": (("int8", "int16", "float32"), ("int8", "int16", "int32")),
    "16x8": (("int16", "int8", "float32"), ("int8", "int16", "int32", "int64")),
    "int8-islands": (("int8", "float32"), ("int8", "int32", "float32")),
}


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry: how the framework's converter script builds the model.

    ``constructor`` is a ``keras.applications`` name (``keras-app``), a builder of
    real_models_keras.AUDIO_BUILDERS (``keras-audio``) or a ``torchvision.models`` name
    (``torch``); ``input_shapes`` are the model's inputs without the batch dimension (batch 1,
    as deployed).
    """

    name: str
    family: str
    framework: str
    constructor: str
    input_shapes: Tuple[Tuple[int, ...], ...]
    input_range: Tuple[float, float]
    options: Dict[str, Any] = field(default_factory=dict)
    quantization: str = "int8"


def _grid(family: str, constructor: str, alphas: Sequence[Optional[float]], resolutions: Sequence[int],
          input_range: Tuple[float, float], **options: Any) -> List[ModelSpec]:
    """Every (alpha, resolution) pair of one keras.applications family; ``None`` alpha for
    constructors without one."""
    specs = []
    quantization = options.pop("quantization", "int8")
    suffix = "_min" if options.get("minimalistic") else ""
    for alpha in alphas:
        for resolution in resolutions:
            width = {} if alpha is None else {"alpha": alpha}
            tag = "" if alpha is None else f"_a{alpha:g}"
            specs.append(ModelSpec(f"{family}{suffix}{tag}_r{resolution}", family, "keras-app", constructor,
                                   ((resolution, resolution, 3),), input_range, {**width, **options},
                                   quantization))
    return specs


def keras_applications() -> List[ModelSpec]:
    """Keras application architectures. Width multipliers are those each constructor documents
    (MobileNet 0.25-1.0, MobileNetV2 0.35-1.4, MobileNetV3 0.75/1.0); the large networks at few
    sizes, since Vela takes longest on them. ConvNeXt-tiny converts with int8 operators only
    (TFLITE_BUILTINS_INT8) but keeps float islands between DEQUANTIZE and QUANTIZE, which Vela
    places on the CPU."""
    return [
        *_grid("mobilenet_v1", "MobileNet", [0.25, 0.5, 0.75, 1.0], [96, 128, 160, 224], TF_RANGE),
        *_grid("mobilenet_v1", "MobileNet", [0.25, 0.5, 0.75, 1.0], [192], TF_RANGE),
        *_grid("mobilenet_v2", "MobileNetV2", [0.35, 0.5, 0.75, 1.0, 1.4], [96, 128, 160, 224], TF_RANGE),
        *_grid("mobilenet_v2", "MobileNetV2", [0.35, 0.5, 0.75, 1.0, 1.3], [192], TF_RANGE),
        *_grid("mobilenet_v2", "MobileNetV2", [1.3], [224], TF_RANGE),
        *_grid("mobilenet_v3_small", "MobileNetV3Small", [0.75, 1.0], [96, 128, 160, 224], PIXEL_RANGE),
        *_grid("mobilenet_v3_small", "MobileNetV3Small", [1.0], [128, 224], PIXEL_RANGE, minimalistic=True),
        *_grid("mobilenet_v3_small", "MobileNetV3Small", [0.75], [160], PIXEL_RANGE, minimalistic=True),
        *_grid("mobilenet_v3_large", "MobileNetV3Large", [0.75, 1.0], [96, 128, 160, 224], PIXEL_RANGE),
        *_grid("mobilenet_v3_large", "MobileNetV3Large", [1.0], [128, 224], PIXEL_RANGE, minimalistic=True),
        *_grid("mobilenet_v3_large", "MobileNetV3Large", [0.75], [160], PIXEL_RANGE, minimalistic=True),
        *_grid("efficientnet_b0", "EfficientNetB0", [None], [96, 128, 160, 192, 224], PIXEL_RANGE),
        *_grid("efficientnet_b1", "EfficientNetB1", [None], [160, 240], PIXEL_RANGE),
        *_grid("efficientnet_b2", "EfficientNetB2", [None], [160, 260], PIXEL_RANGE),
        *_grid("efficientnet_b3", "EfficientNetB3", [None], [160, 300], PIXEL_RANGE),
        *_grid("efficientnet_v2_b0", "EfficientNetV2B0", [None], [128, 224], PIXEL_RANGE),
        *_grid("efficientnet_v2_b1", "EfficientNetV2B1", [None], [128, 240], PIXEL_RANGE),
        *_grid("efficientnet_v2_b2", "EfficientNetV2B2", [None], [160, 260], PIXEL_RANGE),
        *_grid("efficientnet_v2_b3", "EfficientNetV2B3", [None], [160, 300], PIXEL_RANGE),
        *_grid("regnet_x002", "RegNetX002", [None], [128, 224], PIXEL_RANGE),
        *_grid("regnet_x004", "RegNetX004", [None], [224], PIXEL_RANGE),
        *_grid("regnet_x006", "RegNetX006", [None], [224], PIXEL_RANGE),
        *_grid("regnet_x008", "RegNetX008", [None], [224], PIXEL_RANGE),
        *_grid("regnet_y002", "RegNetY002", [None], [128, 224], PIXEL_RANGE),
        *_grid("regnet_y004", "RegNetY004", [None], [224], PIXEL_RANGE),
        *_grid("regnet_y006", "RegNetY006", [None], [224], PIXEL_RANGE),
        *_grid("regnet_y008", "RegNetY008", [None], [224], PIXEL_RANGE),
        *_grid("resnet50", "ResNet50", [None], [128, 224], CAFFE_RANGE),
        *_grid("resnet101", "ResNet101", [None], [160], CAFFE_RANGE),
        *_grid("resnet50_v2", "ResNet50V2", [None], [160, 224], TF_RANGE),
        *_grid("xception", "Xception", [None], [160], TF_RANGE),
        *_grid("inception_v3", "InceptionV3", [None], [160, 224], TF_RANGE),
        *_grid("nasnet_mobile", "NASNetMobile", [None], [96, 160, 224], TF_RANGE),
        *_grid("densenet121", "DenseNet121", [None], [128, 224], TORCH_RANGE),
        *_grid("convnext_tiny", "ConvNeXtTiny", [None], [128, 224], PIXEL_RANGE, quantization="int8-islands"),
    ]


def _audio(name: str, builder: str, input_shapes: Sequence[Tuple[int, ...]], input_range: Tuple[float, float],
           **options: Any) -> List[ModelSpec]:
    """One audio model in both quantisation schemes audio deployments use: full-integer int8 and
    16x8 (int16 activations, int8 weights)."""
    return [ModelSpec(f"{name}{'' if scheme == 'int8-audio' else '_16x8'}", builder, "keras-audio", builder,
                      tuple(input_shapes), input_range, dict(options), scheme)
            for scheme in ("int8-audio", "16x8")]


def keras_audio() -> List[ModelSpec]:
    """Recurrent and audio models of the sizes deployed on microcontrollers, defined in
    real_models_keras.AUDIO_BUILDERS: keyword spotting on 49x10 MFCCs (MLPerf Tiny's KWS front end)
    or 49x40 log-mels, RNNoise-style and convolutional denoisers, and streaming models that carry
    their state through inputs and outputs."""
    mfcc = (49, 10)
    logmel = (49, 40)
    return [
        *_audio("kws_lstm_u64", "lstm_kws", [mfcc], FEATURE_RANGE, units=64, depth=1),
        *_audio("kws_lstm_u128x2", "lstm_kws", [logmel], FEATURE_RANGE, units=128, depth=2),
        *_audio("kws_gru_u64", "gru_kws", [mfcc], FEATURE_RANGE, units=64),
        *_audio("kws_crnn", "crnn_kws", [(49, 40, 1)], FEATURE_RANGE, filters=32, units=64),
        *_audio("kws_conv1d", "conv1d_kws", [(98, 40)], FEATURE_RANGE, filters=64, blocks=4),
        *_audio("denoise_rnnoise", "rnnoise", [(16, 42)], FEATURE_RANGE),
        *_audio("denoise_conv1d", "conv1d_denoiser", [(2048, 1)], WAVE_RANGE, filters=64, dilations=[1, 2, 4, 8]),
        *_audio("stream_tcn", "streaming_tcn", [(1, 40)], FEATURE_RANGE, filters=64, kernel=3, depth=4),
        *_audio("stream_gru", "streaming_gru", [(1, 40), (64,)], FEATURE_RANGE, units=64),
    ]


def _torch(name: str, resolutions: Sequence[int], **options: Any) -> List[ModelSpec]:
    """A torchvision architecture at NCHW input sizes, as PyTorch exports it."""
    return [ModelSpec(f"torch_{name}_r{r}", name, "torch", name, ((3, r, r),), TORCH_RANGE, dict(options),
                      "int8-islands") for r in resolutions]


def torchvision_models() -> List[ModelSpec]:
    """torchvision classification architectures with random weights, exported with litert-torch
    (ai-edge-torch's new name; PT2E int8 quantisation, per-channel symmetric weights)."""
    return [
        *_torch("resnet18", [128, 224]),
        *_torch("resnet34", [160]),
        *_torch("resnet50", [224]),
        *_torch("mobilenet_v2", [96, 160, 224]),
        *_torch("mobilenet_v3_small", [128, 224]),
        *_torch("mobilenet_v3_large", [224]),
        *_torch("efficientnet_b0", [224]),
        *_torch("squeezenet1_0", [224]),
        *_torch("squeezenet1_1", [224]),
        *_torch("shufflenet_v2_x0_5", [224]),
        *_torch("shufflenet_v2_x1_0", [224]),
        *_torch("regnet_x_400mf", [224]),
        *_torch("regnet_y_400mf", [224]),
        *_torch("mnasnet0_5", [224]),
        *_torch("mnasnet1_0", [224]),
    ]


def catalogue() -> List[ModelSpec]:
    """The real-model set, every framework."""
    return [*keras_applications(), *keras_audio(), *torchvision_models()]


def model_seed(base_seed: int, name: str) -> int:
    """A model's own seed: stable when the catalogue changes (it depends on the name, not a position)."""
    digest = hashlib.sha256(f"perfsage-real-models/{base_seed}/{name}".encode()).hexdigest()
    return int(digest[:8], 16)


# ----------------------------------------------------------------------------------------------
# Conversion driver (any environment; the converter scripts import the frameworks)


def spec_by_name(name: str) -> ModelSpec:
    specs = {s.name: s for s in catalogue()}
    if name not in specs:
        raise SystemExit(f"real_models.py: no model {name!r} in the catalogue (see list)")
    return specs[name]


def emit_record(spec: ModelSpec, seed: int, tflite: bytes, out: Path, seconds: Dict[str, float],
                versions: Dict[str, str]) -> None:
    """Writes a converter script's model and prints its record for the driver (one JSON line)."""
    _io.atomic_write_bytes(out / f"{spec.name}.tflite", tflite)
    record = {
        "name": spec.name, "family": spec.family, "framework": spec.framework, "constructor": spec.constructor,
        "input_shapes": spec.input_shapes, "options": spec.options, "quantization": spec.quantization,
        "input_range": spec.input_range, "seed": seed, "bytes": len(tflite),
        "seconds": {k: round(v, 2) for k, v in seconds.items()}, "versions": versions,
    }
    print("RECORD " + json.dumps(record), flush=True)


def converter_main(argv: Sequence[str], script: str, description: str,
                   convert: Callable[[ModelSpec, int], Tuple[bytes, Dict[str, float]]],
                   versions: Dict[str, str]) -> int:
    """A converter script's command line, ``NAME... --out DIR [--seed S]``: converts each catalogue
    model NAME in turn with ``convert(spec, seed)`` (bytes and seconds per step) and writes it. For
    the driver it prints ``START NAME`` before each model, then its record or ``FAILED`` with the
    error (an exception costs that model only; the framework is imported once for all)."""
    parser = argparse.ArgumentParser(prog=script, description=description)
    parser.add_argument("names", nargs="+", metavar="NAME", help="catalogue models (see real_models.py list)")
    parser.add_argument("--out", required=True, help="folder for NAME.tflite")
    parser.add_argument("--seed", type=int, default=0, help="base seed of weights and calibration data")
    args = parser.parse_args(argv)
    specs = [spec_by_name(name) for name in args.names]
    for spec in specs:
        if CONVERTERS[spec.framework] != script:
            raise SystemExit(f"{script}: {spec.name} is a {spec.framework} model; {CONVERTERS[spec.framework]} "
                             "converts it")
    for spec in specs:
        print(f"START {spec.name}", flush=True)
        seed = model_seed(args.seed, spec.name)
        try:
            tflite, seconds = convert(spec, seed)
        except Exception as e:  # the converter's own errors: recorded, the next model goes on
            print("FAILED " + json.dumps({"name": spec.name, "error": f"{type(e).__name__}: {e}"[-2000:]}),
                  flush=True)
            continue
        emit_record(spec, seed, tflite, Path(args.out), seconds, versions)
    return 0


def _read_jsonl(path: Path) -> List[Dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append_jsonl(path: Path, record: Dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _converter_lines(stdout: IO[str]) -> Tuple["queue.Queue[Optional[str]]", threading.Thread]:
    """The converter's output lines as they come (None at its end), read by a thread (returned
    too), so that the driver can wait for the next one with a timeout."""
    lines: "queue.Queue[Optional[str]]" = queue.Queue()

    def read() -> None:
        for line in stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def run_converter(converter: Path, names: Sequence[str], out: Path, seed: int, timeout: float,
                  on_record: Callable[[Dict[str, Any], float], None],
                  on_failure: Callable[[str, str, float], None]) -> None:
    """Converts ``names`` with the ``converter`` script, one process for as many models as
    it survives: a model that raises is reported by the script itself; a model that crashes the
    process or takes longer than ``timeout`` seconds is reported here, and a new process goes on
    with the models after it. Calls ``on_record(record, seconds)`` or ``on_failure(name, error,
    seconds)`` once per model."""
    pending = list(names)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    while pending:
        command = [sys.executable, str(converter), *pending, "--out", str(out), "--seed", str(seed)]
        with tempfile.TemporaryFile("w+") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
            lines, reader = _converter_lines(process.stdout)
            current: Optional[str] = None
            started = time.perf_counter()
            timed_out = False
            while True:
                try:
                    line = lines.get(timeout=timeout)
                except queue.Empty:
                    process.kill()
                    timed_out = True
                    break
                if line is None:
                    break
                kind, _, payload = line.partition(" ")
                if kind == "START":
                    current, started = payload, time.perf_counter()
                elif kind in ("RECORD", "FAILED"):
                    result = json.loads(payload)
                    pending.remove(result["name"])
                    wall = time.perf_counter() - started
                    if kind == "RECORD":
                        on_record(result, wall)
                    else:
                        on_failure(result["name"], result["error"], wall)
                    current = None
            status = process.wait()
            reader.join()  # the pipe ends with the process
            process.stdout.close()
            stderr.seek(0)
            tail = stderr.read().strip()[-2000:]
        if not pending:
            break
        wall = time.perf_counter() - started
        if current is None and not timed_out:
            # Died before starting a model (an import error, say): every model would fail alike.
            for name in pending:
                on_failure(name, f"the converter exited ({status}) before converting it: {tail}", 0.0)
            break
        failed = current or pending[0]
        pending.remove(failed)
        on_failure(failed, f"no result within {timeout:g} s" if timed_out else f"exit status {status}: {tail}", wall)


def cmd_convert(args: argparse.Namespace) -> int:
    """Converts every catalogue model of ``args.framework`` not yet written; returns 0 even when
    some fail (they are listed in conversion-failures.jsonl)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings = out.parent / "conversion.jsonl"
    failures_file = out.parent / "conversion-failures.jsonl"
    specs = [s for s in catalogue() if s.framework in args.framework and (not args.only or s.name in args.only)]
    failed_before = {r["name"] for r in _read_jsonl(failures_file)}
    written = [s for s in specs if (out / f"{s.name}.tflite").exists()]
    skipped = [s for s in specs if s not in written and s.name in failed_before and not args.retry_failed]
    todo = [s for s in specs if s not in written and s not in skipped]
    print(f"{out}: {len(specs)} {'/'.join(args.framework)} models in the catalogue, {len(written)} already written, "
          f"{len(skipped)} failed before (--retry-failed tries them again), converting {len(todo)}", flush=True)
    failures: List[str] = []
    done = 0

    def on_record(record: Dict[str, Any], wall: float) -> None:
        nonlocal done
        done += 1
        _append_jsonl(timings, {**record, "wall_seconds": round(wall, 2)})
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in record["seconds"].items())
        print(f"[{done}/{len(todo)}] {record['name']}: {record['bytes']:,} bytes; {steps}; {wall:.1f} s in all",
              flush=True)

    def on_failure(name: str, error: str, wall: float) -> None:
        nonlocal done
        done += 1
        failures.append(name)
        _append_jsonl(failures_file, {"name": name, "error": error, "wall_seconds": round(wall, 2)})
        print(f"[{done}/{len(todo)}] {name}: FAILED after {wall:.1f} s: {error}", flush=True)

    for framework in sorted({s.framework for s in todo}):
        names = [s.name for s in todo if s.framework == framework]
        converter = Path(__file__).with_name(CONVERTERS[framework])
        run_converter(converter, names, out, args.seed, args.timeout, on_record, on_failure)
    if failures:
        print(f"{len(failures)} model(s) failed to convert ({', '.join(failures)}); why: {failures_file}",
              file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------------------
# Checks (perfsage side)


def _tensors(graph: Any) -> Iterator[Dict[str, Any]]:
    for subgraph in range(graph.num_subgraphs):
        yield from graph.tensors(subgraph)


def dtype_problems(path: Path, quantization: Optional[str]) -> List[str]:
    """Why the model at ``path`` is not what Vela compiles ([] when it is).

    Always: it loads with perfsage and holds no ``ethos-u`` operator (a model Vela already
    compiled). With ``quantization`` None (models of other origins): no floating-point tensor.
    Otherwise every activation and constant tensor has a type the scheme allows (``QUANTIZATION``).
    """
    import perfsage

    try:
        graph = perfsage.load_tflite(str(path))
    except ValueError as e:
        return [f"does not load: {e}"]
    problems = []
    if "ethos-u" in graph.op_names:
        problems.append("already compiled by Vela (ethos-u custom operator)")
    activations, constants = QUANTIZATION[quantization] if quantization else (None, None)
    kinds: Dict[str, int] = {}
    for tensor in _tensors(graph):
        dtype = str(tensor["dtype"])
        if activations is None:
            bad = dtype.startswith(("float", "bfloat"))
        else:
            bad = dtype not in (constants if tensor["is_constant"] else activations)
        if bad:
            key = f"{'constant' if tensor['is_constant'] else 'activation'} {dtype}"
            kinds[key] = kinds.get(key, 0) + 1
    problems += [f"{count} {key} tensor(s)" for key, count in sorted(kinds.items())]
    return problems


def cmd_check(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    files = sorted(folder.glob("*.tflite"))
    if not files:
        print(f"real_models.py: no .tflite files in {folder}", file=sys.stderr)
        return 1
    specs = {s.name: s for s in catalogue()}
    failed = {r["name"] for r in _read_jsonl(folder.parent / "conversion-failures.jsonl")}
    missing = sorted(set(specs) - {f.stem for f in files} - failed)
    bad = {}
    for file in files:
        spec = specs.get(file.stem)
        problems = dtype_problems(file, spec.quantization if spec else None)
        if problems:
            bad[file.name] = problems
            scheme = spec.quantization if spec else "full-integer"
            print(f"{folder}/{file.name}: not {scheme} as expected: {'; '.join(problems)}", file=sys.stderr)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        print(f"{folder}: {len(missing)} catalogue model(s) not converted ({shown})", file=sys.stderr)
    if failed:
        print(f"{folder}: {len(failed)} catalogue model(s) failed to convert ({', '.join(sorted(failed))}); "
              f"why: {folder.parent / 'conversion-failures.jsonl'}", file=sys.stderr)
    print(f"{folder}: {len(files) - len(bad)} of {len(files)} models load with perfsage and hold only the "
          "tensor types of their quantisation scheme")
    return 1 if bad else 0


def cmd_shared_int8(args: argparse.Namespace) -> int:
    for path in sorted(Path(args.dir).glob("*.tflite")):
        problems = dtype_problems(path, None)
        if problems:
            print(f"skipping {path.name}: {'; '.join(problems)}", file=sys.stderr)
        else:
            print(path)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for spec in catalogue():
        shapes = " ".join("x".join(map(str, shape)) for shape in spec.input_shapes)
        print(f"{spec.name}\t{spec.framework}\t{spec.constructor}({json.dumps(spec.options)}) {shapes} "
              f"{spec.quantization}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="convert the catalogue models not yet written (in the framework's venv)")
    convert.add_argument("--out", required=True, help="folder for the .tflite files")
    convert.add_argument("--framework", nargs="+", choices=sorted(CONVERTERS), required=True,
                         help="convert the models of these frameworks (their environment runs this command)")
    convert.add_argument("--seed", type=int, default=0, help="base seed of weights and calibration data")
    convert.add_argument("--timeout", type=float, default=CONVERT_TIMEOUT_S, help="seconds per model")
    convert.add_argument("--only", nargs="+", metavar="NAME", help="convert only these catalogue models")
    convert.add_argument("--retry-failed", action="store_true", help="try again the models that failed before")
    convert.set_defaults(run=cmd_convert)
    check = sub.add_parser("check", help="every model loads with perfsage and holds its scheme's tensor types")
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
