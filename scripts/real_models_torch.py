"""Converts one PyTorch catalogue model of scripts/real_models.py to int8 TFLite (in ``.venv-torch``).

``python scripts/real_models_torch.py NAME... --out DIR --seed S`` builds the torchvision architecture
with seeded random weights (``weights=None``: nothing is downloaded), quantises it with PT2E
(litert-torch's quantiser: symmetric per-channel int8 weights, int8 activations; torchao's
prepare/convert) calibrated on seeded random inputs, exports it with litert-torch, writes
``DIR/NAME.tflite`` and prints its record. ai-edge-torch 0.7 is only a shim that warns and points
to litert-torch (its new name, which it installs), so this script imports litert_torch.

The model keeps PyTorch's layout (NCHW input, with the TRANSPOSE operators the exporter places).
Operators the quantiser does not annotate stay float between DEQUANTIZE and QUANTIZE.
Several names convert in one process, in turn (real_models.converter_main).
"""

from __future__ import annotations

import importlib.metadata
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Sequence, Tuple

import litert_torch
import torch
import torchvision
from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
from litert_torch.quantize.quant_config import QuantConfig
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

from real_models import CALIBRATION_SAMPLES, ModelSpec, converter_main


def _calibration_inputs(spec: ModelSpec, seed: int) -> Any:
    generator = torch.Generator().manual_seed(seed)
    low, high = spec.input_range
    shape = (CALIBRATION_SAMPLES, *spec.input_shapes[0])
    return low + (high - low) * torch.rand(shape, generator=generator)


def convert(spec: ModelSpec, seed: int) -> Tuple[bytes, Dict[str, float]]:
    """(tflite bytes, seconds per step) of ``spec`` built, quantised and exported."""
    seconds: Dict[str, float] = {}
    start = time.perf_counter()
    # One process converts many models: nothing TorchDynamo cached for the last one carries over.
    torch._dynamo.reset()
    torch.manual_seed(seed)
    model = getattr(torchvision.models, spec.constructor)(weights=None, **spec.options).eval()
    samples = _calibration_inputs(spec, seed)
    example = (samples[:1],)
    seconds["build"] = time.perf_counter() - start
    start = time.perf_counter()
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    # strict=True: TorchDynamo tracing records each node's source function, which the quantiser's
    # annotators look up; the default non-strict export does not, and residual ADDs stay float.
    captured = torch.export.export(model, example, strict=True).module()
    prepared = prepare_pt2e(captured, quantizer)
    with torch.no_grad():
        for sample in samples:
            prepared(sample[None])
    quantized = convert_pt2e(prepared, fold_quantize=False)
    seconds["quantize"] = time.perf_counter() - start
    start = time.perf_counter()
    edge_model = litert_torch.convert(quantized, example, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    with tempfile.TemporaryDirectory() as folder:
        exported = Path(folder) / f"{spec.name}.tflite"
        edge_model.export(str(exported))
        tflite = exported.read_bytes()
    seconds["convert"] = time.perf_counter() - start
    return tflite, seconds


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv: Sequence[str]) -> int:
    versions = {name: _version(name) for name in
                ("torch", "torchvision", "ai-edge-torch", "litert-torch", "ai-edge-litert", "litert-converter")}
    return converter_main(argv, Path(__file__).name, __doc__.splitlines()[0], convert, versions)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
