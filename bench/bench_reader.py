#!/usr/bin/env python3
"""Benchmark: TFLite parsing + graph/feature extraction, perfsage vs the obvious Python alternative.

What is compared (same reading work on the same bytes, everything in memory so disk is not timed):

* perfsage, one thread: ``perfsage.load_many(items, threads=1)`` and a per-call loop of
  ``perfsage.load_tflite(bytes)``. Each call verifies the flatbuffer, copies the model into C++
  values, builds the operator graph (nodes, edges) and computes node features [N, 55], graph
  features and totals.
* perfsage, all threads: ``perfsage.load_many(items, threads=0)`` (GIL released, every core).
* the Python baseline, one thread: the ``tflite`` package (pure-Python flatbuffers bindings) as a
  user would write it: ``tflite.Model.GetRootAsModel(buf, 0)``, read every buffer's size, every
  opcode (max of BuiltinCode/DeprecatedBuiltinCode), every tensor (shape, type, buffer,
  quantisation scale/zero point), every operator (inputs, outputs, builtin options), then build the
  producer->consumer edge list, a per-node feature row (the same 55 columns as perfsage: shapes
  padded to rank 4, kernel/stride/dilation/padding/activation, MACs, parameter and activation
  bytes, the weight-value columns from int8/int16 buffers, the alignment columns, ...) into a
  numpy array, and the graph totals (peak activation bytes, longest path, ...).
  It does less than perfsage: no flatbuffer verification (the ``tflite`` package has none), no
  schedule checks, no tensor names, entry subgraph only (no control flow). Before timing, its
  output is checked against perfsage's on every real model (total MACs, the whole node feature
  matrix, edge_index, totals), so the work is known to be comparable.

Inputs:
  (a) the real models in $PERFSAGE_DATA/models (default <repo>/../shared/data), read once into bytes;
  (b) a batch of 10,000 graphs made by cycling those models' bytes (the same bytes objects repeated,
      so memory stays small; items are real models, not synthetic ones). The Python baseline is
      timed on a subset of whole cycles of the batch (per-graph cost is what is compared).

Noise handling (the machine is shared): methods are run interleaved, round after round, with the
order rotated each round; each figure is the median over rounds (min/max shown), and each speedup is
given both as the ratio of medians and as the median of the per-round ratios (paired runs that ran
close together in time). Freeing the results is timed apart and reported beside the load time,
with a speedup that counts it.

Run:  .venv/bin/python bench/bench_reader.py [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import perfsage

try:
    import tflite
except ImportError:  # pragma: no cover - the baseline needs it
    sys.exit("bench_reader: the `tflite` package is needed for the Python baseline (pip install tflite)")

REPO_ROOT = Path(__file__).resolve().parent.parent
GOAL_SPEEDUP_1_THREAD = 50.0

# --------------------------------------------------------------------------------------------------
# The Python baseline (the `tflite` package).  Everything below up to `py_read_graph` is set-up done
# once at import, not timed.
# --------------------------------------------------------------------------------------------------

_BO = tflite.BuiltinOperator
_OPT = tflite.BuiltinOptions


def _codes(names: Sequence[str]) -> frozenset:
    return frozenset(getattr(_BO, n) for n in names if hasattr(_BO, n))


# Cost classes, as perfsage defines MACs (see cpp/include/perfsage/features.h).
CONV = _codes(["CONV_2D"])
DEPTHWISE = _codes(["DEPTHWISE_CONV_2D"])
TRANSPOSE_CONV = _codes(["TRANSPOSE_CONV"])
FULLY_CONNECTED = _codes(["FULLY_CONNECTED"])
BATCH_MATMUL = _codes(["BATCH_MATMUL"])
RECURRENT = _codes(["LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "RNN",
                    "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN", "SVDF"])
POOL = _codes(["AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"])
REDUCE = _codes(["MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY",
                 "REDUCE_ALL", "ARG_MAX", "ARG_MIN"])
BILINEAR = _codes(["RESIZE_BILINEAR"])
ELEMENTWISE = _codes([
    "ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "POW", "FLOOR_DIV",
    "FLOOR_MOD", "ADD_N", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH",
    "HARD_SWISH", "LEAKY_RELU", "PRELU", "ELU", "GELU", "EXP", "LOG", "SQRT", "RSQRT", "ABS", "NEG",
    "SQUARE", "SIN", "COS", "FLOOR", "CEIL", "ROUND", "SIGN", "QUANTIZE", "DEQUANTIZE", "CAST",
    "SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION", "LESS",
    "GREATER", "EQUAL", "NOT_EQUAL", "LESS_EQUAL", "GREATER_EQUAL", "LOGICAL_AND", "LOGICAL_OR",
    "LOGICAL_NOT", "SELECT", "SELECT_V2", "CUMSUM", "ATAN2"])
HAS_FILTER = CONV | DEPTHWISE | TRANSPOSE_CONV | _codes(["CONV_3D", "CONV_3D_TRANSPOSE"])
# The ops whose constant int8/int16 operands the weight columns summarise.
HAS_WEIGHTS = HAS_FILTER | FULLY_CONNECTED | BATCH_MATMUL | RECURRENT
# The ops whose MACs sum over the input channels, so that padding those multiplies them.
REDUCES_INPUT_CHANNELS = HAS_WEIGHTS - DEPTHWISE
INT8_LOG2 = [float(np.log2(1.0 + abs(q))) for q in range(-128, 128)]


def _value_summary(data: np.ndarray, dtype_code: int) -> Tuple[int, int, float]:
    """(count, zeros, sum of log2(1 + |q|)) of int8 (code 9) or int16 (code 7, q / 256) values."""
    if dtype_code == 9:
        histogram = np.bincount(data.view(np.int8).astype(np.int64) + 128, minlength=256)
        log2_sum = 0.0
        for b in range(256):  # in level order, as perfsage sums them
            log2_sum += float(histogram[b]) * INT8_LOG2[b]
        return int(data.size), int(histogram[128]), log2_sum
    if dtype_code == 7:
        q = data[: data.size // 2 * 2].view("<i2").astype(np.float64)
        log2_sum = 0.0
        for v in np.log2(1.0 + np.abs(q) / 256.0):
            log2_sum += float(v)
        return int(q.size), int(np.count_nonzero(q == 0)), log2_sum
    return 0, 0, 0.0
CUSTOM = _BO.CUSTOM


def _round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def _pad_ratio(x: int, m: int) -> float:
    return _round_up(x, m) / x if x > 0 else 0.0


# Storage bits per element, indexed by TFLite TensorType code.
DTYPE_BITS = [32, 16, 32, 8, 64, 0, 8, 16, 64, 8, 64, 128, 64, 0, 0, 32, 16, 4, 16, 2, 4, 8, 8]

# perfsage.node_feature_names(), same order (checked at start-up)
COLUMNS = [
    "op_type", "is_custom", "in_n", "in_h", "in_w", "in_c", "in_rank", "out_n", "out_h", "out_w",
    "out_c", "out_rank", "num_activation_inputs", "num_constant_inputs", "num_outputs", "in_bits",
    "out_bits", "weight_bits", "is_quantized", "per_channel_weights", "kernel_h", "kernel_w",
    "stride_h", "stride_w", "dilation_h", "dilation_w", "padding_same", "padding_valid",
    "fused_activation", "depth_multiplier", "axis", "keep_dims", "block_size", "adj_x", "adj_y",
    "align_corners", "half_pixel_centers", "num_splits", "macs", "param_count", "param_bytes",
    "input_activation_bytes", "output_activation_bytes", "subgraph", "call_depth", "weight_zero_fraction",
    "weight_log2_magnitude", "in_c_pad8", "in_c_pad16", "out_c_pad8", "out_c_pad16", "out_w_pad8", "padded_macs",
    "padded_in_elements", "padded_out_elements"]
NUM_COLUMNS = len(COLUMNS)
NUM_OP_TYPES = len(perfsage.op_vocabulary())


def _options_reader(cls: type, fields: Callable[[Any], Dict[str, Any]]) -> Callable[[Any], Dict[str, Any]]:
    def read(table: Any) -> Dict[str, Any]:
        o = cls()
        o.Init(table.Bytes, table.Pos)
        return fields(o)
    return read


# The builtin options the features use, per options-table type.
OPTION_READERS: Dict[int, Callable[[Any], Dict[str, Any]]] = {
    _OPT.Conv2DOptions: _options_reader(tflite.Conv2DOptions, lambda o: {
        "padding": o.Padding(), "stride_h": o.StrideH(), "stride_w": o.StrideW(),
        "dilation_h": o.DilationHFactor(), "dilation_w": o.DilationWFactor(),
        "fused_activation": o.FusedActivationFunction()}),
    _OPT.DepthwiseConv2DOptions: _options_reader(tflite.DepthwiseConv2DOptions, lambda o: {
        "padding": o.Padding(), "stride_h": o.StrideH(), "stride_w": o.StrideW(),
        "dilation_h": o.DilationHFactor(), "dilation_w": o.DilationWFactor(),
        "depth_multiplier": o.DepthMultiplier(), "fused_activation": o.FusedActivationFunction()}),
    _OPT.Pool2DOptions: _options_reader(tflite.Pool2DOptions, lambda o: {
        "padding": o.Padding(), "stride_h": o.StrideH(), "stride_w": o.StrideW(),
        "filter_h": o.FilterHeight(), "filter_w": o.FilterWidth(),
        "fused_activation": o.FusedActivationFunction()}),
    _OPT.TransposeConvOptions: _options_reader(tflite.TransposeConvOptions, lambda o: {
        "padding": o.Padding(), "stride_h": o.StrideH(), "stride_w": o.StrideW(),
        "fused_activation": o.FusedActivationFunction()}),
    _OPT.FullyConnectedOptions: _options_reader(tflite.FullyConnectedOptions, lambda o: {
        "fused_activation": o.FusedActivationFunction(), "keep_dims": o.KeepNumDims()}),
    _OPT.ConcatenationOptions: _options_reader(tflite.ConcatenationOptions, lambda o: {
        "axis": o.Axis(), "fused_activation": o.FusedActivationFunction()}),
    _OPT.AddOptions: _options_reader(tflite.AddOptions, lambda o: {
        "fused_activation": o.FusedActivationFunction()}),
    _OPT.SubOptions: _options_reader(tflite.SubOptions, lambda o: {
        "fused_activation": o.FusedActivationFunction()}),
    _OPT.MulOptions: _options_reader(tflite.MulOptions, lambda o: {
        "fused_activation": o.FusedActivationFunction()}),
    _OPT.DivOptions: _options_reader(tflite.DivOptions, lambda o: {
        "fused_activation": o.FusedActivationFunction()}),
    _OPT.ReducerOptions: _options_reader(tflite.ReducerOptions, lambda o: {
        "keep_dims": o.KeepDims()}),
    _OPT.SVDFOptions: _options_reader(tflite.SVDFOptions, lambda o: {
        "fused_activation": o.FusedActivationFunction()}),
    _OPT.UnidirectionalSequenceLSTMOptions: _options_reader(
        tflite.UnidirectionalSequenceLSTMOptions, lambda o: {
            "fused_activation": o.FusedActivationFunction()}),
    _OPT.LSTMOptions: _options_reader(tflite.LSTMOptions, lambda o: {
        "fused_activation": o.FusedActivationFunction()}),
    _OPT.BatchMatMulOptions: _options_reader(tflite.BatchMatMulOptions, lambda o: {
        "adj_x": o.AdjX(), "adj_y": o.AdjY()}),
    _OPT.ResizeBilinearOptions: _options_reader(tflite.ResizeBilinearOptions, lambda o: {
        "align_corners": o.AlignCorners(), "half_pixel_centers": o.HalfPixelCenters()}),
    _OPT.DepthToSpaceOptions: _options_reader(tflite.DepthToSpaceOptions, lambda o: {
        "block_size": o.BlockSize()}),
    _OPT.SpaceToDepthOptions: _options_reader(tflite.SpaceToDepthOptions, lambda o: {
        "block_size": o.BlockSize()}),
    _OPT.SplitOptions: _options_reader(tflite.SplitOptions, lambda o: {
        "num_splits": o.NumSplits()}),
    _OPT.GatherOptions: _options_reader(tflite.GatherOptions, lambda o: {"axis": o.Axis()}),
    _OPT.PackOptions: _options_reader(tflite.PackOptions, lambda o: {"axis": o.Axis()}),
    _OPT.UnpackOptions: _options_reader(tflite.UnpackOptions, lambda o: {"axis": o.Axis()}),
}


def _axis(code: int, axis: int, inputs: List[int], outputs: List[int], tensors: List[Any]) -> int:
    """The options' axis counted from the front: a negative one from the end of the tensor it indexes
    (the output for CONCATENATION and PACK, the first input otherwise)."""
    if axis >= 0:
        return axis
    ref = (outputs if code in (_BO.CONCATENATION, _BO.PACK) else inputs)[:1]
    return axis + len(tensors[ref[0]][0]) if ref and ref[0] >= 0 and tensors[ref[0]][0] else axis


def _rank4(shape: List[int]) -> List[int]:
    r = len(shape)
    if r <= 4:
        return [1] * (4 - r) + shape
    n = 1
    for d in shape[: r - 3]:
        n *= d
    return [n] + shape[r - 3:]


def _int_list(vec: Any) -> List[int]:
    # The generated *AsNumpy accessors return 0 (not an empty array) when a vector is absent.
    return vec.tolist() if isinstance(vec, np.ndarray) else []


def py_read_graph(buf: bytes) -> Dict[str, Any]:
    """Parses TFLite bytes with the `tflite` package into node features, edges and totals."""
    model = tflite.Model.GetRootAsModel(buf, 0)

    # Bytes of constant data per buffer (external data: offset/size after the flatbuffer).
    buffer_bytes = []
    for b in range(model.BuffersLength()):
        buffer = model.Buffers(b)
        offset = buffer.Offset()
        buffer_bytes.append(buffer.Size() if offset > 1 else buffer.DataLength())

    opcodes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        opcodes.append(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))

    sg = model.Subgraphs(0)  # the entry subgraph

    # Tensors: (shape, dtype bits, is_constant, num_elements, num_bytes, scale, zero_point,
    # (count, zeros, log2 sum) of its integer values).
    tensors = []
    variables = []
    for t in range(sg.TensorsLength()):
        tensor = sg.Tensors(t)
        shape = _int_list(tensor.ShapeAsNumpy())
        bits = DTYPE_BITS[tensor.Type()]
        constant = buffer_bytes[tensor.Buffer()] > 0 if buffer_bytes else False
        elements = 1
        for d in shape:
            elements *= d
        q = tensor.Quantization()
        if q is not None:
            scale = q.ScaleAsNumpy()
            zero_point = q.ZeroPointAsNumpy()
            scale = scale if isinstance(scale, np.ndarray) else None
            zero_point = zero_point if isinstance(zero_point, np.ndarray) else None
        else:
            scale = zero_point = None
        data = model.Buffers(tensor.Buffer()).DataAsNumpy() if constant else 0
        summary = _value_summary(data, tensor.Type()) if isinstance(data, np.ndarray) else (0, 0, 0.0)
        tensors.append((shape, bits, constant, elements, (elements * bits + 7) // 8, scale,
                        zero_point, summary))
        if tensor.IsVariable():
            variables.append(t)

    rows = []
    num_ops = sg.OperatorsLength()
    producer = [-1] * len(tensors)
    first_use = [max(num_ops, 1)] * len(tensors)  # tensor lifetimes in execution steps
    last_use = [-1] * len(tensors)
    edges = set()
    counted = [False] * len(tensors)
    op_counts = [0] * NUM_OP_TYPES
    total_macs = total_params = total_param_bytes = total_activation_bytes = 0
    for i in range(num_ops):
        op = sg.Operators(i)
        code = opcodes[op.OpcodeIndex()]
        inputs = _int_list(op.InputsAsNumpy())
        outputs = _int_list(op.OutputsAsNumpy())
        table = op.BuiltinOptions()
        reader = OPTION_READERS.get(op.BuiltinOptionsType()) if table is not None else None
        o = reader(table) if reader is not None else {}

        # Inputs: first activation input, largest constant input (the weights), costs, edges.
        x_in = weights = None
        n_act = n_const = param_count = param_bytes = in_bytes = 0
        for t in inputs:
            if t < 0:
                continue
            x = tensors[t]
            if x[2]:
                n_const += 1
                param_count += x[3]
                param_bytes += x[4]
                if weights is None or x[3] > weights[3]:
                    weights = x
            else:
                n_act += 1
                in_bytes += x[4]
                if x_in is None:
                    x_in = x
            if producer[t] >= 0:
                edges.add((i, producer[t]))
        out_bytes = 0
        for t in outputs:
            out_bytes += tensors[t][4]
            producer[t] = i
        x_out = tensors[outputs[0]] if outputs else None

        # MACs.
        out_elems = x_out[3] if x_out else 0
        filt = tensors[inputs[1]] if len(inputs) > 1 and inputs[1] >= 0 else None
        macs = 0
        if code in CONV or code in DEPTHWISE:
            axis = 0 if code in CONV else 3
            if filt and len(filt[0]) > axis and filt[0][axis]:
                macs = out_elems * (filt[3] // filt[0][axis])
        elif code in FULLY_CONNECTED:
            if filt and len(filt[0]) == 2 and x_in:
                macs = x_in[3] * filt[0][0]
        elif code in POOL:
            macs = out_elems * max(o.get("filter_h", 0), 1) * max(o.get("filter_w", 0), 1)
        elif code in ELEMENTWISE:
            macs = out_elems
        elif code in REDUCE:
            macs = x_in[3] if x_in else 0
        elif code in BILINEAR:
            macs = 4 * out_elems
        elif code in RECURRENT:
            x0 = tensors[inputs[0]] if inputs and inputs[0] >= 0 else None
            if x0 and x0[0] and x0[0][-1]:
                per_row = sum(tensors[t][3] for t in inputs[1:]
                              if t >= 0 and tensors[t][2] and len(tensors[t][0]) == 2)
                macs = x0[3] // x0[0][-1] * per_row
        elif code in TRANSPOSE_CONV:
            x2 = tensors[inputs[2]] if len(inputs) > 2 and inputs[2] >= 0 else None
            if x2 and filt and len(filt[0]) > 3 and filt[0][3]:
                macs = x2[3] * (filt[3] // filt[0][3])
        elif code in BATCH_MATMUL:
            a = tensors[inputs[0]]
            k = 2 if o.get("adj_x") else 1
            macs = out_elems * (a[0][-k] if len(a[0]) >= k else 1)

        # Graph totals: every tensor counted once; lifetimes for the peak.
        for t in inputs + outputs:
            if t < 0:
                continue
            if first_use[t] > i:
                first_use[t] = i
            last_use[t] = i
            if not counted[t]:
                counted[t] = True
                x = tensors[t]
                if x[2]:
                    total_params += x[3]
                    total_param_bytes += x[4]
                else:
                    total_activation_bytes += x[4]
        total_macs += macs
        op_counts[code] += 1

        kernel_h, kernel_w = o.get("filter_h", 0), o.get("filter_w", 0)
        if code in HAS_FILTER and filt and len(filt[0]) >= 4:
            kernel_h, kernel_w = filt[0][1], filt[0][2]
        padding = o.get("padding", -1)
        count = zeros = 0
        log2_sum = 0.0
        for t in inputs if code in HAS_WEIGHTS else []:
            if t >= 0:
                count += tensors[t][7][0]
                zeros += tensors[t][7][1]
                log2_sum += tensors[t][7][2]
        in4 = _rank4(x_in[0]) if x_in else [0, 0, 0, 0]
        out4 = _rank4(x_out[0]) if x_out else [0, 0, 0, 0]
        in_c16 = _pad_ratio(in4[3], 16) if code in REDUCES_INPUT_CHANNELS else 1.0
        rows.append([
            code, code == CUSTOM, *in4, len(x_in[0]) if x_in else 0,
            *out4, len(x_out[0]) if x_out else 0,
            n_act, n_const, len(outputs),
            x_in[1] if x_in else 0, x_out[1] if x_out else 0, weights[1] if weights else 0,
            x_out is not None and x_out[5] is not None and len(x_out[5]) > 0,
            weights is not None and weights[5] is not None and len(weights[5]) > 1,
            kernel_h, kernel_w, o.get("stride_h", 0), o.get("stride_w", 0),
            o.get("dilation_h", 0), o.get("dilation_w", 0), padding == 0, padding == 1,
            o.get("fused_activation", 0), o.get("depth_multiplier", 0),
            _axis(code, o.get("axis", 0), inputs, outputs, tensors),
            o.get("keep_dims", False), o.get("block_size", 0), o.get("adj_x", False),
            o.get("adj_y", False), o.get("align_corners", False),
            o.get("half_pixel_centers", False), o.get("num_splits", 0),
            macs, param_count, param_bytes, in_bytes, out_bytes, 0, 0,
            zeros / count if count else 0.0, log2_sum / count if count else 0.0,
            _pad_ratio(in4[3], 8), _pad_ratio(in4[3], 16), _pad_ratio(out4[3], 8), _pad_ratio(out4[3], 16),
            _pad_ratio(out4[2], 8), macs * in_c16 * _pad_ratio(out4[3], 16),
            in4[0] * in4[1] * in4[2] * _round_up(in4[3], 16), out4[0] * out4[1] * out4[2] * _round_up(out4[3], 16)])

    node_features = np.array(rows, dtype=np.float32).reshape(-1, NUM_COLUMNS)
    pairs = sorted(edges)  # (destination, source): sorted by destination, then source, like perfsage
    edge_index = np.array([[s for _, s in pairs], [d for d, _ in pairs]], dtype=np.int64).reshape(2, -1)

    # Longest path and degrees (edges point forward, sorted by destination: one pass).
    path = [1] * num_ops
    in_degree = [0] * num_ops
    out_degree = [0] * num_ops
    for d, s in pairs:
        if path[s] + 1 > path[d]:
            path[d] = path[s] + 1
        in_degree[d] += 1
        out_degree[s] += 1

    # Peak activation bytes: non-constant tensors alive at once, graph inputs live from the start,
    # outputs to the end, variables throughout.
    end = max(num_ops, 1) - 1
    graph_inputs = _int_list(sg.InputsAsNumpy())
    graph_outputs = _int_list(sg.OutputsAsNumpy())
    for t in graph_inputs + variables:
        first_use[t] = 0
        last_use[t] = max(last_use[t], 0)
    for t in graph_outputs + variables:
        first_use[t] = min(first_use[t], end)
        last_use[t] = end
    delta = [0] * (end + 2)
    for t, x in enumerate(tensors):
        if last_use[t] >= 0 and not x[2]:
            delta[first_use[t]] += x[4]
            delta[last_use[t] + 1] -= x[4]
    live = peak = 0
    for step in range(end + 1):
        live += delta[step]
        peak = max(peak, live)

    input_bytes = sum(tensors[t][4] for t in graph_inputs)
    output_bytes = sum(tensors[t][4] for t in graph_outputs)
    longest = max(path) if path else 0
    graph_features = np.array(
        [num_ops, len(pairs), model.SubgraphsLength(), total_macs, total_params, total_param_bytes,
         total_activation_bytes, peak, input_bytes, output_bytes, longest,
         max(in_degree, default=0), max(out_degree, default=0)] + op_counts, dtype=np.float32)
    return {
        "node_features": node_features,
        "edge_index": edge_index,
        "graph_features": graph_features,
        "totals": {"macs": total_macs, "param_count": total_params,
                   "param_bytes": total_param_bytes, "activation_bytes": total_activation_bytes,
                   "peak_activation_bytes": peak, "input_bytes": input_bytes,
                   "output_bytes": output_bytes, "longest_path": longest},
    }


# --------------------------------------------------------------------------------------------------
# Timing helpers.
# --------------------------------------------------------------------------------------------------

def data_dir() -> Path:
    return Path(os.environ.get("PERFSAGE_DATA", REPO_ROOT / ".." / "shared" / "data")).resolve()


def load_models() -> List[Tuple[str, bytes]]:
    models_dir = data_dir() / "models"
    paths = sorted(models_dir.glob("*.tflite"))
    if not paths:
        sys.exit(f"bench_reader: no .tflite files in {models_dir} (set PERFSAGE_DATA)")
    return [(p.name, p.read_bytes()) for p in paths]


def timed(fn: Callable[[], Any]) -> Tuple[float, float, float]:
    """(wall seconds, process CPU seconds, seconds to free the result) of one call of fn.

    Freeing is timed separately (``del`` of the only reference; neither side's results hold
    reference cycles, so that frees everything) and reported on its own: it is not parsing, but a
    user who keeps a batch of graphs pays it when the batch goes away.
    """
    gc.collect()
    cpu = time.process_time()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    start = time.perf_counter()
    del result
    freeing = time.perf_counter() - start
    gc.collect()
    return elapsed, cpu, freeing


Samples = Dict[str, Dict[str, List[float]]]


def run_rounds(methods: Dict[str, Callable[[], Any]], rounds: int) -> Samples:
    """Runs every method once per round, the order rotated each round; returns, per method, the
    wall, CPU and freeing seconds of every run."""
    names = list(methods)
    samples: Samples = {n: {"wall": [], "cpu": [], "free": []} for n in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            w, c, f = timed(methods[name])
            samples[name]["wall"].append(w)
            samples[name]["cpu"].append(c)
            samples[name]["free"].append(f)
    return samples


def summarize(sample: Dict[str, List[float]], graphs: int, ops: int) -> Dict[str, Any]:
    seconds, cpu, free = sample["wall"], sample["cpu"], sample["free"]
    per_graph = [s / graphs * 1e6 for s in seconds]
    return {
        "graphs": graphs,
        "operators": ops,
        "runs": len(seconds),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "free_seconds": free,
        "free_us_per_graph_median": statistics.median(f / graphs * 1e6 for f in free),
        "us_per_graph_with_free_median": statistics.median(
            (s + f) / graphs * 1e6 for s, f in zip(seconds, free)),
        # > 1 when several cores worked; ~1 for threads=0 means the other cores were busy elsewhere.
        "cpu_per_wall_median": statistics.median(c / w for c, w in zip(cpu, seconds)),
        "us_per_graph_median": statistics.median(per_graph),
        "us_per_graph_min": min(per_graph),
        "us_per_graph_max": max(per_graph),
        "us_per_op_median": statistics.median(s / ops * 1e6 for s in seconds),
    }


def speedup(base: Dict[str, Any], fast: Dict[str, Any]) -> Dict[str, float]:
    """Baseline cost / fast cost per graph: ratio of medians, and median of per-round ratios."""
    paired = [(b / base["graphs"]) / (f / fast["graphs"]) for b, f in zip(base["seconds"], fast["seconds"])]
    return {
        "ratio_of_medians": base["us_per_graph_median"] / fast["us_per_graph_median"],
        "median_of_round_ratios": statistics.median(paired),
        "min_round_ratio": min(paired),
        "max_round_ratio": max(paired),
        # Counting the time to free the results too (both sides).
        "with_free_ratio_of_medians":
            base["us_per_graph_with_free_median"] / fast["us_per_graph_with_free_median"],
    }


# --------------------------------------------------------------------------------------------------
# The benchmark.
# --------------------------------------------------------------------------------------------------

TOTALS_COMPARED = ("param_count", "param_bytes", "activation_bytes", "peak_activation_bytes",
                   "input_bytes", "output_bytes", "longest_path")


def check_consistency(models: List[Tuple[str, bytes]]) -> Dict[str, Any]:
    """The baseline must produce what perfsage produces, or the comparison means nothing."""
    if list(perfsage.node_feature_names()) != COLUMNS:
        sys.exit("bench_reader: perfsage's node feature columns changed; update the Python baseline")
    per_model = []
    for name, data in models:
        g = perfsage.load_tflite(data)
        p = py_read_graph(data)
        same_macs = int(p["totals"]["macs"]) == int(g.totals["macs"])
        same_features = p["node_features"].shape == g.node_features.shape and bool(
            np.array_equal(p["node_features"], g.node_features))
        same_edges = bool(np.array_equal(p["edge_index"], g.edge_index))
        totals_differ = [k for k in TOTALS_COMPARED if int(p["totals"][k]) != int(g.totals[k])]
        same_totals = not totals_differ
        mismatched = []
        if not same_features and p["node_features"].shape == g.node_features.shape:
            diff = np.any(p["node_features"] != g.node_features, axis=0)
            mismatched = [COLUMNS[c] for c in np.flatnonzero(diff)]
        per_model.append({
            "model": name, "nodes": int(g.num_nodes), "edges": int(g.num_edges),
            "macs_perfsage": int(g.totals["macs"]), "macs_python": int(p["totals"]["macs"]),
            "macs_equal": same_macs, "node_features_equal": same_features,
            "edges_equal": same_edges, "totals_equal": same_totals,
            "mismatched_columns": mismatched, "mismatched_totals": totals_differ})
    return {
        "models": per_model,
        "all_macs_equal": all(m["macs_equal"] for m in per_model),
        "all_features_equal": all(m["node_features_equal"] for m in per_model),
        "all_edges_equal": all(m["edges_equal"] for m in per_model),
        "all_totals_equal": all(m["totals_equal"] for m in per_model),
    }


def environment() -> Dict[str, Any]:
    return {
        "perfsage": perfsage.__version__,
        "feature_schema": perfsage.FEATURE_SCHEMA_VERSION,
        "tflite_package": getattr(tflite, "__version__", "?"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_at_start": _loadavg(),
        "perfsage_module": getattr(perfsage._core, "__file__", "?"),
    }


def _loadavg() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def fmt_row(label: str, s: Dict[str, Any]) -> str:
    return (f"  {label:<38} {s['us_per_graph_median']:>10.1f} {s['us_per_op_median']:>9.2f}"
            f"  {s['cpu_per_wall_median']:>8.2f}  {s['free_us_per_graph_median']:>8.1f}   [{s['us_per_graph_min']:.1f} .. "
            f"{s['us_per_graph_max']:.1f}]  ({s['runs']} runs x {s['graphs']} graphs)")


def fmt_speedup(label: str, r: Dict[str, float]) -> str:
    return (f"  {label:<38} {r['ratio_of_medians']:>7.1f}x (ratio of medians)   "
            f"{r['median_of_round_ratios']:>7.1f}x (median of paired rounds, "
            f"range {r['min_round_ratio']:.1f}..{r['max_round_ratio']:.1f});  "
            f"with freeing {r['with_free_ratio_of_medians']:.1f}x")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small batch and few rounds (smoke check)")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)

    if args.quick:
        batch_size, py_batch_cycles, rounds_a, rounds_b, ps_passes = 600, 8, 5, 3, 20
    else:
        batch_size, py_batch_cycles, rounds_a, rounds_b, ps_passes = 10_000, 67, 31, 11, 100

    env = environment()
    print("perfsage reader benchmark: parse + graph + features, perfsage (C++) vs the `tflite` package (Python)")
    print(f"  perfsage {env['perfsage']} (feature schema {env['feature_schema']}), tflite {env['tflite_package']}, "
          f"numpy {env['numpy']}, {env['implementation']} {env['python']}")
    print(f"  {env['platform']}; os.cpu_count() = {env['cpu_count']}, usable CPUs = {env['cpu_affinity']}, "
          f"load average {env['load_average_at_start']} (shared machine: other work competes for the cores)")
    print(f"  mode: {'quick' if args.quick else 'full'}")

    models = load_models()
    names = [n for n, _ in models]
    blobs = [b for _, b in models]
    n_models = len(models)
    ops_per_model = [perfsage.load_tflite(b).num_nodes for b in blobs]
    print(f"  data: {n_models} real models from {data_dir() / 'models'}, "
          f"{sum(ops_per_model)} operators, {sum(map(len, blobs)) / 1e6:.2f} MB, held in memory as bytes")

    # -- consistency -------------------------------------------------------------------------------
    consistency = check_consistency(models)
    n_ok = sum(m["macs_equal"] for m in consistency["models"])
    n_feat = sum(m["node_features_equal"] for m in consistency["models"])
    n_edges = sum(m["edges_equal"] for m in consistency["models"])
    n_tot = sum(m["totals_equal"] for m in consistency["models"])
    print()
    print("consistency (Python baseline vs perfsage, on every real model):")
    print(f"  total MACs equal on {n_ok}/{n_models} models; node feature matrix [N,{NUM_COLUMNS}] identical on "
          f"{n_feat}/{n_models}; edge_index identical on {n_edges}/{n_models}; "
          f"other totals ({', '.join(TOTALS_COMPARED)}) equal on {n_tot}/{n_models}")
    for m in consistency["models"]:
        ok = m["macs_equal"] and m["node_features_equal"] and m["edges_equal"] and m["totals_equal"]
        flag = "ok  " if ok else "DIFF"
        differ = m["mismatched_columns"] + m["mismatched_totals"]
        extra = f"  differ: {', '.join(differ)}" if differ else ""
        print(f"    {flag} {m['model']:<42} {m['nodes']:>3} ops  MACs perfsage {m['macs_perfsage']:>10,}"
              f"  python {m['macs_python']:>10,}{extra}")

    # -- (a) the real models, one pass = every model once ---------------------------------------
    print()
    print(f"(a) the {n_models} real models, from bytes; {rounds_a} interleaved rounds, medians")
    ops_a = sum(ops_per_model)
    passes = [b for _ in range(ps_passes) for b in blobs]  # perfsage passes per run (runs are ~µs)

    def ps_call_a() -> Any:
        return [perfsage.load_tflite(b) for b in passes]

    def ps_many1_a() -> Any:
        return [perfsage.load_many(blobs, threads=1) for _ in range(ps_passes)]

    def ps_many0_a() -> Any:
        return [perfsage.load_many(blobs, threads=0) for _ in range(ps_passes)]

    def py_a() -> Any:
        return [py_read_graph(b) for b in blobs]

    # Per-model times on the side: a perfsage call and a baseline call, alternating.
    per_model_ps: List[List[float]] = [[] for _ in blobs]
    per_model_py: List[List[float]] = [[] for _ in blobs]

    def per_model_round() -> None:
        for i, b in enumerate(blobs):
            reps = 20
            t0 = time.perf_counter()
            for _ in range(reps):
                perfsage.load_tflite(b)
            per_model_ps[i].append((time.perf_counter() - t0) / reps)
            t0 = time.perf_counter()
            py_read_graph(b)
            per_model_py[i].append(time.perf_counter() - t0)

    methods_a = {"ps_call": ps_call_a, "ps_many1": ps_many1_a, "ps_many0": ps_many0_a, "py": py_a,
                 "per_model": per_model_round}
    samples_a = run_rounds(methods_a, rounds_a)
    ps_n = ps_passes * n_models
    res_a = {
        "perfsage_load_tflite_loop_1_thread": summarize(samples_a["ps_call"], ps_n, ps_passes * ops_a),
        "perfsage_load_many_1_thread": summarize(samples_a["ps_many1"], ps_n, ps_passes * ops_a),
        "perfsage_load_many_all_threads": summarize(samples_a["ps_many0"], ps_n, ps_passes * ops_a),
        "tflite_python_1_thread": summarize(samples_a["py"], n_models, ops_a),
    }
    print(f"  {'method':<38} {'µs/graph':>10} {'µs/op':>9}  {'cpu/wall':>8}  {'free µs/g':>8}  [min .. max µs/graph]")
    labels = {
        "perfsage_load_tflite_loop_1_thread": "perfsage load_tflite loop, 1 thread",
        "perfsage_load_many_1_thread": "perfsage load_many threads=1",
        "perfsage_load_many_all_threads": f"perfsage load_many threads=0 ({os.cpu_count()} CPUs)",
        "tflite_python_1_thread": "tflite package (Python), 1 thread",
    }
    for key, s in res_a.items():
        print(fmt_row(labels[key], s))
    base_a = res_a["tflite_python_1_thread"]
    ratios_a = {k: speedup(base_a, res_a[k]) for k in res_a if k != "tflite_python_1_thread"}
    print("  speedup over the Python baseline (per graph):")
    for k, r in ratios_a.items():
        print(fmt_speedup(labels[k], r))

    print("  per model (median µs per call, alternating calls):")
    per_model = []
    for i, name in enumerate(names):
        ps_us = statistics.median(per_model_ps[i]) * 1e6
        py_us = statistics.median(per_model_py[i]) * 1e6
        per_model.append({"model": name, "operators": ops_per_model[i], "perfsage_us": ps_us,
                          "python_us": py_us, "speedup": py_us / ps_us})
        print(f"    {name:<42} {ops_per_model[i]:>3} ops  perfsage {ps_us:>8.1f}  python {py_us:>9.1f}"
              f"  {py_us / ps_us:>6.1f}x")

    # -- (b) a batch of 10,000 graphs ----------------------------------------------------------------
    batch = [blobs[i % n_models] for i in range(batch_size)]
    ops_b = sum(ops_per_model[i % n_models] for i in range(batch_size))
    py_n = min(py_batch_cycles * n_models, batch_size)
    py_batch = batch[:py_n]
    ops_py_b = sum(ops_per_model[i % n_models] for i in range(py_n))
    print()
    print(f"(b) a batch of {batch_size:,} graphs (the {n_models} real models' bytes cycled to "
          f"{batch_size:,} items, {ops_b:,} operators); {rounds_b} interleaved rounds, medians")
    print(f"    the Python baseline is timed on the first {py_n:,} items of the batch "
          f"({py_n // n_models} whole cycles, {ops_py_b:,} operators): per-graph cost is compared")

    methods_b = {
        "perfsage_load_many_1_thread": lambda: perfsage.load_many(batch, threads=1),
        "perfsage_load_tflite_loop_1_thread": lambda: [perfsage.load_tflite(b) for b in batch],
        "perfsage_load_many_all_threads": lambda: perfsage.load_many(batch, threads=0),
        "tflite_python_1_thread": lambda: [py_read_graph(b) for b in py_batch],
    }
    perfsage.load_many(batch, threads=0)  # warm-up (allocator, page faults), not timed
    samples_b = run_rounds(methods_b, rounds_b)
    res_b = {}
    for key, sample in samples_b.items():
        if key == "tflite_python_1_thread":
            res_b[key] = summarize(sample, py_n, ops_py_b)
        else:
            res_b[key] = summarize(sample, batch_size, ops_b)
    print(f"  {'method':<38} {'µs/graph':>10} {'µs/op':>9}  {'cpu/wall':>8}  {'free µs/g':>8}  [min .. max µs/graph]")
    for key in labels:
        print(fmt_row(labels[key], res_b[key]))
    base_b = res_b["tflite_python_1_thread"]
    ratios_b = {k: speedup(base_b, res_b[k]) for k in res_b if k != "tflite_python_1_thread"}
    print("  speedup over the Python baseline (per graph):")
    for k in labels:
        if k in ratios_b:
            print(fmt_speedup(labels[k], ratios_b[k]))
    print(f"  batch wall time: perfsage threads=1 {statistics.median(samples_b['perfsage_load_many_1_thread']['wall']):.3f} s, "
          f"threads=0 {statistics.median(samples_b['perfsage_load_many_all_threads']['wall']):.3f} s for {batch_size:,} graphs; "
          f"Python baseline would take ~{base_b['us_per_graph_median'] * batch_size / 1e6:.1f} s")

    # -- goal ------------------------------------------------------------------------------------------
    one_thread = [r[m] for ratios in (ratios_a, ratios_b)
                  for k, r in ratios.items() if k != "perfsage_load_many_all_threads"
                  for m in ("ratio_of_medians", "median_of_round_ratios")]
    worst = min(one_thread)
    goal_met = worst >= GOAL_SPEEDUP_1_THREAD
    worst_with_free = min(r["with_free_ratio_of_medians"] for ratios in (ratios_a, ratios_b)
                          for k, r in ratios.items() if k != "perfsage_load_many_all_threads")
    worst_model = min(per_model, key=lambda m: m["speedup"])
    print()
    load_end = _loadavg()
    print(f"load average at the end: {load_end}.  cpu/wall: process CPU time / wall time per run; for "
          f"threads=0 it shows how many cores the run actually got.")
    print(f"goal: >= {GOAL_SPEEDUP_1_THREAD:.0f}x on one thread -> {'MET' if goal_met else 'NOT MET'} "
          f"(lowest one-thread speedup over (a) and (b), both ratio forms: {worst:.1f}x)")
    print(f"  also: counting the time to free the results, the lowest one-thread speedup is "
          f"{worst_with_free:.1f}x; the slowest single model is {worst_model['model']} at "
          f"{worst_model['speedup']:.1f}x ({worst_model['operators']} operators)")

    if args.json:
        out = {
            "benchmark": "bench_reader",
            "mode": "quick" if args.quick else "full",
            "environment": env,
            "config": {"batch_size": batch_size, "python_batch_subset": py_n, "rounds_a": rounds_a,
                       "rounds_b": rounds_b, "perfsage_passes_per_run_a": ps_passes,
                       "models": names, "operators_per_model": ops_per_model},
            "consistency": consistency,
            "real_models": {"results": res_a, "speedup_vs_python": ratios_a, "per_model": per_model},
            "batch": {"results": res_b, "speedup_vs_python": ratios_b},
            "load_average_at_end": load_end,
            "goal": {"min_one_thread_speedup": worst, "target": GOAL_SPEEDUP_1_THREAD,
                     "met": goal_met, "min_one_thread_speedup_with_free": worst_with_free,
                     "min_per_model_speedup": worst_model["speedup"]},
        }
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
