"""Samples of every search space are valid for the real runtimes: LiteRT runs them in both dtypes,
perfsage reads back what LiteRT sees, and Vela places every operator it supports on the NPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import perfsage
from vela_compile import compile_with_vela

SAMPLES = 4
# Why Vela may leave an operator on the CPU without our models being at fault: operators the
# Ethos-U55 does not have (DEPTH_TO_SPACE, GATHER, DIV, CAST), resize factors other than 2
# (super-resolution x3), ARG_MAX other than over the last axis or over more than 127 values, the
# QUANTIZE of a CAST's float32 values, and int16 BATCH_MATMUL.
ACCEPTED_REASONS = ("Unsupported opType", "unsupported scale-factor", "Only last axis or -1 is supported",
                    "is over the limit: 127", "unsupported DataType Float32", "Matmul with unsupported IFM type")
# Spaces whose every draw has a layer without a 16x8 kernel (depth-to-space, layer norms).
NO_INT16X8 = {"super_resolution", "transformer"}
INTEGER_CASES = [(space, dtype) for dtype in ("int8", "int16x8") for space in sorted(perfsage.spaces.spaces())
                 if dtype == "int8" or space not in NO_INT16X8]


@pytest.mark.parametrize(("space", "dtype"), [(space, "float32") for space in sorted(perfsage.spaces.spaces())]
                         + INTEGER_CASES)
def test_samples_run_in_litert(space: str, dtype: str) -> None:
    for item in perfsage.sample(space, SAMPLES, seed=11, dtype=dtype):
        model = perfsage.build_model(item["spec"], seed=item["seed"], dtype=dtype)
        interpreter = Interpreter(model_content=model)
        assert perfsage.load_tflite(model).op_names == [op["op_name"] for op in interpreter._get_ops_details()]
        interpreter.allocate_tensors()
        for d in interpreter.get_input_details():
            interpreter.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
        interpreter.invoke()


@pytest.mark.parametrize(("space", "dtype"), INTEGER_CASES)
def test_integer_samples_run_on_the_npu(space: str, dtype: str, tmp_path: Path) -> None:
    npu_total = cpu_total = 0
    for k, item in enumerate(perfsage.sample(space, SAMPLES, seed=12, dtype=dtype)):
        model = perfsage.build_model(item["spec"], seed=item["seed"], dtype=dtype)
        result = compile_with_vela(model, tmp_path / str(k))
        assert "Quantization scale" not in result.stdout, result.stdout[-2000:]
        assert result.cpu_operators == len(result.cpu_reasons), result.stdout[-3000:]
        assert all(any(a in r for a in ACCEPTED_REASONS) for r in result.cpu_reasons), (space, k, result.cpu_reasons)
        npu_total += result.npu_operators
        cpu_total += result.cpu_operators
    print(f"{space} {dtype}: {npu_total / (npu_total + cpu_total):.1%} of operators on the NPU")
