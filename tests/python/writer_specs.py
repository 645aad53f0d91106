"""Architecture specs the writer tests share: together they use every layer op."""

# Every image op: conv (fused relu6), depthwise, hard-swish, squeeze-excite, residual add and sub,
# pooling, pad, transposed conv, both resizes, depth-to-space, concatenation, tanh, mean, dense.
IMAGE_ALL_OPS = {"inputs": [{"name": "x", "shape": [1, 16, 16, 8]}], "layers": [
  {"name": "c", "op": "conv2d", "filters": 16, "kernel": 3, "stride": 2, "activation": "relu6"},
  {"name": "dw", "op": "depthwise_conv2d", "kernel": 5, "dilation": 1, "padding": "same"},
  {"name": "hs", "op": "hard_swish"},
  {"name": "se_pool", "op": "global_avg_pool"},
  {"name": "se_r", "op": "conv2d", "filters": 4, "kernel": 1, "activation": "relu"},
  {"name": "se_e", "op": "conv2d", "filters": 16, "kernel": 1},
  {"name": "se_s", "op": "logistic"},
  {"name": "se_m", "op": "mul", "inputs": ["hs", "se_s"]},
  {"name": "res", "op": "add", "inputs": ["se_m", "c"]},
  {"name": "sub", "op": "sub", "inputs": ["res", "dw"]},
  {"name": "mp", "op": "max_pool2d", "pool": 2},
  {"name": "ap", "op": "avg_pool2d", "pool": 3, "stride": 1, "padding": "same"},
  {"name": "pad", "op": "pad", "paddings": [[0, 0], [1, 1], [1, 1], [0, 0]]},
  {"name": "cv", "op": "conv2d", "filters": 32, "kernel": 3, "padding": "valid"},
  {"name": "up", "op": "transpose_conv2d", "filters": 8, "kernel": 3, "stride": 2},
  {"name": "rs", "op": "resize_bilinear", "size": [16, 16]},
  {"name": "rn", "op": "resize_nearest", "size": [32, 32]},
  {"name": "s2", "op": "conv2d", "filters": 16, "kernel": 3, "stride": 2},
  {"name": "d2s", "op": "depth_to_space", "block_size": 2},
  {"name": "cat", "op": "concat", "inputs": ["d2s", "rn"], "axis": 3},
  {"name": "tanh", "op": "tanh"},
  {"name": "relu", "op": "relu", "inputs": ["cat"]},
  {"name": "cat2", "op": "concat", "inputs": ["tanh", "relu"]},
  {"name": "m", "op": "mean", "axes": [1, 2], "keep_dims": False},
  {"name": "fc", "op": "dense", "units": 10},
  {"name": "sm", "op": "softmax"}]}

# A transformer encoder block: layer norm, Q/K/V dense, heads via reshape/transpose, batch matmul,
# softmax, feed-forward with a fused relu, residual adds; two outputs.
TRANSFORMER = {"inputs": [{"name": "x", "shape": [1, 8, 32]}], "layers": [
  {"name": "ln", "op": "layer_norm"},
  {"name": "q", "op": "dense", "units": 32, "inputs": ["ln"]},
  {"name": "k", "op": "dense", "units": 32, "inputs": ["ln"]},
  {"name": "v", "op": "dense", "units": 32, "inputs": ["ln"]},
  {"name": "qh", "op": "reshape", "shape": [1, 8, 4, 8], "inputs": ["q"]},
  {"name": "qt", "op": "transpose", "perm": [0, 2, 1, 3]},
  {"name": "kh", "op": "reshape", "shape": [1, 8, 4, 8], "inputs": ["k"]},
  {"name": "kt", "op": "transpose", "perm": [0, 2, 1, 3]},
  {"name": "vh", "op": "reshape", "shape": [1, 8, 4, 8], "inputs": ["v"]},
  {"name": "vt", "op": "transpose", "perm": [0, 2, 1, 3]},
  {"name": "att", "op": "batch_matmul", "inputs": ["qt", "kt"], "adj_y": True},
  {"name": "sm", "op": "softmax", "beta": 0.35},
  {"name": "ctx", "op": "batch_matmul", "inputs": ["sm", "vt"]},
  {"name": "ct", "op": "transpose", "perm": [0, 2, 1, 3]},
  {"name": "cr", "op": "reshape", "shape": [1, 8, 32]},
  {"name": "o", "op": "dense", "units": 32},
  {"name": "r1", "op": "add", "inputs": ["o", "x"]},
  {"name": "sq", "op": "squared_difference", "inputs": ["r1", "x"]},
  {"name": "rq", "op": "rsqrt", "inputs": ["sq"]},
  {"name": "f1", "op": "dense", "units": 64, "inputs": ["r1"]},
  {"name": "f1r", "op": "relu"},
  {"name": "f2", "op": "dense", "units": 32},
  {"name": "r2", "op": "add", "inputs": ["f2", "r1"]}], "outputs": ["r2", "rq"]}

# DS-CNN keyword spotting as MLPerf Tiny has it (first block only): the relu layer fuses.
KWS = {"name": "kws", "inputs": [{"name": "x", "shape": [1, 49, 10, 1]}], "layers": [
  {"name": "c1", "op": "conv2d", "filters": 64, "kernel": [10, 4], "stride": 2},
  {"name": "r1", "op": "relu"},
  {"name": "dw1", "op": "depthwise_conv2d", "kernel": 3, "activation": "relu"},
  {"name": "pw1", "op": "conv2d", "filters": 64, "kernel": 1, "activation": "relu"},
  {"name": "pool", "op": "avg_pool2d", "pool": [25, 5]},
  {"name": "flat", "op": "reshape", "shape": [1, 64]},
  {"name": "fc", "op": "dense", "units": 12},
  {"name": "sm", "op": "softmax"}]}


def _op_spec(shape, *layers):
    return {"inputs": [{"name": "x", "shape": shape}], "layers": list(layers)}


def _on_conv(*layers):
    """Layers after a 3x3 conv "c" on an 8x8x16 input "x": an int8 operand with its own scale."""
    return _op_spec([1, 8, 8, 16], {"name": "c", "op": "conv2d", "filters": 16, "kernel": 3}, *layers)


# One spec per op added after the three above, with the TFLite operator it proves and where Vela
# places that operator on ethos-u55-256 ("npu", "cpu", or "none" when Vela folds it away).
OP_SPECS = {
  "strided_slice": (_op_spec(
    [1, 10, 12, 16],
    {"name": "c", "op": "conv2d", "filters": 16, "kernel": 3},
    {"name": "ss", "op": "strided_slice", "begin": [0, 1, -11, 0], "end": [1, 9, 0, 8], "strides": [1, 2, 1, 1],
     "end_mask": 4}), "STRIDED_SLICE", "npu"),
  "slice": (_op_spec(
    [1, 10, 12, 16],
    {"name": "c", "op": "conv2d", "filters": 16, "kernel": 3},
    {"name": "s", "op": "slice", "begin": [0, 2, 3, 4], "size": [-1, 5, -1, 8]}), "SLICE", "npu"),
  "squeeze": (_op_spec(
    [1, 6, 6, 16],
    {"name": "g", "op": "global_avg_pool"},
    {"name": "sq", "op": "squeeze", "axes": [1, 2]},
    {"name": "fc", "op": "dense", "units": 4}), "SQUEEZE", "none"),
  # A Conv1D as the converter lowers it: EXPAND_DIMS, CONV_2D, SQUEEZE.
  "expand_dims": (_op_spec(
    [1, 20, 16],
    {"name": "e", "op": "expand_dims", "axis": 2},
    {"name": "c", "op": "conv2d", "filters": 8, "kernel": [3, 1]},
    {"name": "sq", "op": "squeeze", "axes": [-2]}), "EXPAND_DIMS", "none"),
  # The second operand, a per-channel mean, has the conv output's scale; the input x does not and
  # is requantised.
  "maximum": (_on_conv(
    {"name": "m", "op": "mean", "axes": [1, 2]},
    {"name": "mx", "op": "maximum", "inputs": ["c", "m"]},
    {"name": "mx2", "op": "maximum", "inputs": ["mx", "x"]}), "MAXIMUM", "npu"),
  "minimum": (_on_conv(
    {"name": "mn", "op": "minimum", "inputs": ["c", "x"]}), "MINIMUM", "npu"),
  "leaky_relu": (_on_conv(
    {"name": "lr", "op": "leaky_relu", "alpha": 0.1}), "LEAKY_RELU", "npu"),
  "exp": (_on_conv(
    {"name": "e", "op": "exp"}), "EXP", "npu"),
  "abs": (_on_conv(
    {"name": "a", "op": "abs"}), "ABS", "npu"),
  # Channel shuffle: split, then the parts concatenated in another order (Vela reads the parts
  # in place, leaving the SPLIT no operation of its own).
  "split": (_op_spec(
    [1, 8, 8, 12],
    {"name": "c", "op": "conv2d", "filters": 12, "kernel": 3},
    {"name": "s", "op": "split", "num_splits": 3},
    {"name": "j", "op": "concat", "inputs": ["s:2", "s:0", "s:1"]}), "SPLIT", "none"),
  "split_v": ({**_op_spec(
    [1, 8, 8, 12],
    {"name": "c", "op": "conv2d", "filters": 12, "kernel": 3},
    {"name": "s", "op": "split_v", "sizes": [2, 6], "axis": 1},
    {"name": "a", "op": "conv2d", "filters": 4, "kernel": 1, "inputs": ["s:0"]},
    {"name": "b", "op": "relu", "inputs": ["s:1"]}), "outputs": ["a", "b", "s:1"]}, "SPLIT_V", "npu"),
  # Stacking a dense output with the input, whose int8 scale differs and is requantised.
  "pack": (_op_spec(
    [1, 8, 16],
    {"name": "d", "op": "dense", "units": 16},
    {"name": "p", "op": "pack", "inputs": ["d", "x"], "axis": 1}), "PACK", "npu"),
  "unpack": ({**_op_spec(
    [1, 4, 16],
    {"name": "d", "op": "dense", "units": 16},
    {"name": "u", "op": "unpack", "axis": 1},
    {"name": "a", "op": "add", "inputs": ["u:0", "u:3"]}), "outputs": ["a", "u:1"]}, "UNPACK", "npu"),
  "prelu": (_on_conv(
    {"name": "pr", "op": "prelu"}), "PRELU", "npu"),
  "mirror_pad": (_on_conv(
    {"name": "mp", "op": "mirror_pad", "paddings": [[0, 0], [2, 1], [0, 3], [0, 0]], "mode": "reflect"},
    {"name": "sp", "op": "mirror_pad", "paddings": [[0, 0], [1, 1], [1, 1], [0, 0]], "mode": "symmetric"}),
    "MIRROR_PAD", "npu"),
  "sum": (_on_conv({"name": "s", "op": "sum", "axes": [1, 2]}), "SUM", "npu"),
  "reduce_max": (_on_conv({"name": "m", "op": "reduce_max", "axes": [2], "keep_dims": False}), "REDUCE_MAX", "npu"),
  "gather": (_on_conv({"name": "g", "op": "gather", "axis": 3, "indices": [5, 0, 5, 15]}), "GATHER", "cpu"),
  # The classifier's last step; its int32 output is a spec output next to the int8 scores. Vela
  # runs it on the NPU, lowered to operations that its debug database ties to no source operator:
  # the per-operator labels leave ARG_MAX "none" and its cost unattributed.
  "arg_max": ({**_on_conv({"name": "am", "op": "arg_max"}), "outputs": ["c", "am"]}, "ARG_MAX", "none"),
  # The divisor, the exp of a logistic, lies in [1, e]: away from zero, as real divisors are. Vela
  # has no DIV.
  "div": (_on_conv(
    {"name": "gate", "op": "logistic", "inputs": ["x"]},
    {"name": "divisor", "op": "exp"},
    {"name": "d", "op": "div", "inputs": ["c", "divisor"], "activation": "relu"}), "DIV", "cpu"),
  # To int32 and back to float32, quantised again to the model's activations; the int32 values are
  # an output too. Vela has no CAST.
  "cast": ({**_on_conv(
    {"name": "ci", "op": "cast", "to": "int32"},
    {"name": "cf", "op": "cast", "to": "float32"},
    {"name": "cq", "op": "quantize", "range_scale": 2.0}), "outputs": ["cq", "ci"]}, "CAST", "cpu"),
  # A float section, as converters leave a swish and a 1x1 conv they do not quantize: dequantized,
  # computed in float32 (float weights), quantized again. Vela leaves all of it to the CPU.
  "dequantize": (_on_conv(
    {"name": "dq", "op": "dequantize"},
    {"name": "sg", "op": "logistic"},
    {"name": "sw", "op": "mul", "inputs": ["dq", "sg"]},
    {"name": "fc", "op": "conv2d", "filters": 8, "kernel": 1},
    {"name": "q", "op": "quantize"},
    {"name": "c2", "op": "conv2d", "filters": 8, "kernel": 3}), "DEQUANTIZE", "cpu"),
  # Constant operands, as input normalisation and unfolded batch norms carry them: a per-channel
  # scale and shift, a scalar offset. Vela runs them on the NPU, the per-channel ones far slower.
  "constant_operands": (_on_conv(
    {"name": "bn_scale", "op": "mul", "constant": "channel"},
    {"name": "bn_shift", "op": "add", "constant": "channel"},
    {"name": "offset", "op": "sub", "constant": "scalar", "constant_range": [0.25, 0.5]}), "MUL", "npu"),
  # A requantisation to another scale and a round trip through int16 (each step to another scale,
  # so that none is a no-op in int16x8 models either), joined by an addition.
  "quantize": (_on_conv(
    {"name": "rq", "op": "quantize", "range_scale": 2.0},
    {"name": "wide", "op": "quantize", "to": "int16", "inputs": ["c"], "range_scale": 1.5},
    {"name": "narrow", "op": "quantize", "range_scale": 0.5},
    {"name": "a", "op": "add", "inputs": ["rq", "narrow"]}), "QUANTIZE", "npu"),
  # Stacked Keras LSTMs over 16 frames: the first returns its sequence, the second its last step
  # (a STRIDED_SLICE), then a classifier. Vela unrolls the LSTMs into NPU operations.
  "lstm": (_op_spec(
    [1, 16, 10],
    {"name": "l1", "op": "lstm", "units": 24},
    {"name": "l2", "op": "lstm", "units": 16, "return_sequences": False},
    {"name": "fc", "op": "dense", "units": 12}), "UNIDIRECTIONAL_SEQUENCE_LSTM", "npu"),
  # Stacked SVDFs over one frame of 40 features, as TFLM's keyword model; Vela has no SVDF.
  "svdf": (_op_spec(
    [1, 40],
    {"name": "s1", "op": "svdf", "units": 32, "memory": 8, "rank": 2},
    {"name": "s2", "op": "svdf", "units": 16, "memory": 4},
    {"name": "fc", "op": "dense", "units": 12}), "SVDF", "cpu"),
}
# Outputs whose type is not the model's activation type: int32 indices and values.
PLAIN_OUTPUTS = {"am": "int32", "ci": "int32"}

ALL = {"image_all_ops": IMAGE_ALL_OPS, "transformer": TRANSFORMER, "kws": KWS,
       **{name: spec for name, (spec, _, _) in OP_SPECS.items()}}


def _variant(spec, **layers):
    """``spec`` with the layers named in ``layers`` replaced."""
    return {**spec, "layers": [layers.get(layer["name"], layer) for layer in spec["layers"]]}


# Specs with a layer that LiteRT has no 16x8 kernel for, and that layer's op.
NO_INT16X8 = {"image_all_ops": "hard_swish", "transformer": "layer_norm", "arg_max": "arg_max", "lstm": "lstm",
              "svdf": "svdf"}
# The specs int16x8 models are written from: those of ALL, the two large ones with their layers
# that have no 16x8 kernel swapped for ones that do (the divisor-like rsqrt input made positive).
INT16X8 = {
  **{name: spec for name, spec in ALL.items() if name not in NO_INT16X8},
  "image_all_ops": _variant(IMAGE_ALL_OPS, hs={"name": "hs", "op": "leaky_relu"},
                            d2s={"name": "d2s", "op": "resize_nearest", "size": [32, 32]}),
  "transformer": _variant(TRANSFORMER, ln={"name": "ln", "op": "tanh"},
                          sq={"name": "sq", "op": "logistic", "inputs": ["r1"]}),
}
