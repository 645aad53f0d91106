"""The TFLite writer: every model it writes must be valid for LiteRT and read back by perfsage, int8
models must carry converter-style quantisation and compile with Vela, bad specs must be refused
naming the layer."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import perfsage
from vela_compile import compile_with_vela
from writer_specs import ALL, INT16X8, KWS, NO_INT16X8, OP_SPECS, PLAIN_OUTPUTS

DTYPES = ["int8", "float32", "int16x8"]
ACTIVATION_TYPES = {"int8": np.int8, "float32": np.float32, "int16x8": np.int16}
# Every spec in every dtype that has its layers.
CASES = [(name, dtype) for dtype in DTYPES for name in sorted(INT16X8 if dtype == "int16x8" else ALL)]


def spec_of(name: str, dtype: str) -> dict:
    return (INT16X8 if dtype == "int16x8" else ALL)[name]


def invoke(model: bytes) -> Interpreter:
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in interpreter.get_input_details():
        if d["dtype"] in (np.int8, np.int16):
            info = np.iinfo(d["dtype"])
            x = rng.integers(info.min, info.max + 1, size=d["shape"]).astype(d["dtype"])
        else:
            x = rng.uniform(-1, 1, size=d["shape"]).astype(np.float32)
        interpreter.set_tensor(d["index"], x)
    interpreter.invoke()
    return interpreter


@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_litert_loads_allocates_and_invokes(name: str, dtype: str) -> None:
    # Validity is what a real runtime accepts, not what our reader accepts.
    model = perfsage.build_model(spec_of(name, dtype), seed=1, dtype=dtype)
    interpreter = invoke(model)
    for d in interpreter.get_output_details():
        y = interpreter.get_tensor(d["index"])
        assert y.dtype == np.dtype(PLAIN_OUTPUTS.get(d["name"], ACTIVATION_TYPES[dtype])), d["name"]
        if dtype == "float32":
            assert np.isfinite(y).all()


@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_reader_reads_back_what_litert_sees(name: str, dtype: str) -> None:
    model = perfsage.build_model(spec_of(name, dtype), seed=2, dtype=dtype)
    graph = perfsage.load_tflite(model)
    interpreter = Interpreter(model_content=model)
    ops = interpreter._get_ops_details()
    assert graph.op_names == [op["op_name"] for op in ops]
    litert = {t["index"]: t for t in interpreter.get_tensor_details()}
    for i, tensor in enumerate(graph.tensors()):
        assert tensor["shape"] == tuple(litert[i]["shape"]), tensor["name"]
        assert tensor["dtype"] == np.dtype(litert[i]["dtype"]).name, tensor["name"]


@pytest.mark.parametrize("name", sorted(NO_INT16X8))
def test_layers_without_a_16x8_kernel_are_refused_by_name(name: str) -> None:
    # Why: LiteRT refuses these ops with int16 inputs; a model it cannot run has no place in the data.
    op = NO_INT16X8[name]
    with pytest.raises(perfsage.PerfSageError, match=rf"layer \d+ '\w+' \({op}\): op '{op}' has no 16x8"):
        perfsage.build_model(ALL[name], dtype="int16x8")


def test_relu_after_conv_is_fused_as_the_converter_does() -> None:
    graph = perfsage.load_tflite(perfsage.build_model(KWS))
    assert graph.op_names == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "AVERAGE_POOL_2D",
                              "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert graph.operators()[0]["options"]["fused_activation"] == 1  # RELU
    # A relu whose input has other readers cannot be fused.
    spec = copy.deepcopy(KWS)
    spec["layers"].insert(2, {"name": "side", "op": "relu", "inputs": ["c1"]})
    spec["layers"][3]["inputs"] = ["r1"]
    spec["outputs"] = ["sm", "side"]
    assert perfsage.load_tflite(perfsage.build_model(spec)).op_names.count("RELU") == 2


def test_same_spec_and_seed_give_identical_bytes() -> None:
    for dtype in DTYPES:
        spec = spec_of("image_all_ops", dtype)
        a = perfsage.build_model(spec, seed=5, dtype=dtype)
        assert a == perfsage.build_model(spec, seed=5, dtype=dtype)
        b = perfsage.build_model(spec, seed=6, dtype=dtype)
        assert a != b and len(a) == len(b)  # other weights, same structure


def test_int8_quantisation_is_converter_style() -> None:
    graph = perfsage.load_tflite(perfsage.build_model(KWS, dtype="int8"))
    tensors, ops = graph.tensors(), graph.operators()
    for op in ops:
        if op["name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        x, w, b = (tensors[i] for i in op["inputs"])
        channel_axis = 3 if op["name"] == "DEPTHWISE_CONV_2D" else 0
        assert w["dtype"] == "int8" and w["quantization"]["quantized_dimension"] == channel_axis
        assert len(w["quantization"]["scale"]) == w["shape"][channel_axis]  # per channel
        assert (w["quantization"]["zero_point"] == 0).all()  # symmetric
        assert b["dtype"] == "int32"
        np.testing.assert_allclose(b["quantization"]["scale"],
                                   x["quantization"]["scale"][0] * w["quantization"]["scale"], rtol=1e-6)
    softmax_out = tensors[ops[-1]["outputs"][0]]["quantization"]
    assert softmax_out["scale"][0] == pytest.approx(1 / 256) and softmax_out["zero_point"][0] == -128
    # Pooling and reshape keep their input's parameters.
    for op in ops:
        if op["name"] in ("AVERAGE_POOL_2D", "RESHAPE"):
            qi, qo = (tensors[op[k][0]]["quantization"] for k in ("inputs", "outputs"))
            assert qi["scale"][0] == qo["scale"][0] and qi["zero_point"][0] == qo["zero_point"][0]
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(graph.op_names)  # int8 in, int8 out


def test_int16x8_quantisation_is_the_converters_16x8() -> None:
    # Why: 16x8 kernels accept only symmetric int16 activations, int8 weights and int64 biases.
    graph = perfsage.load_tflite(perfsage.build_model(KWS, dtype="int16x8"))
    tensors, ops = graph.tensors(), graph.operators()
    weighted = 0
    for op in ops:
        for i in op["inputs"] + op["outputs"]:
            t = tensors[i]
            if t["dtype"] == "int16":
                assert (t["quantization"]["zero_point"] == 0).all(), t["name"]
        if op["name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        weighted += 1
        x, w, b = (tensors[i] for i in op["inputs"])
        assert (x["dtype"], w["dtype"], b["dtype"]) == ("int16", "int8", "int64")
        np.testing.assert_allclose(b["quantization"]["scale"],
                                   x["quantization"]["scale"][0] * w["quantization"]["scale"], rtol=1e-6)
    assert weighted == 4
    softmax_out = tensors[ops[-1]["outputs"][0]]["quantization"]
    assert softmax_out["scale"][0] == pytest.approx(1 / 32768) and softmax_out["zero_point"][0] == 0


def test_reader_features_tell_16x8_from_int8_and_name_the_new_ops() -> None:
    # Why: a predictor tells a 16x8 model from its int8 twin only by these columns, and the new
    # ops by their builtin codes, which the vocabulary already holds (no new feature columns).
    names = perfsage.node_feature_names()
    column = {n: names.index(n) for n in ("op_type", "in_bits", "out_bits", "weight_bits", "param_bytes")}
    int8, wide = (np.asarray(perfsage.load_tflite(perfsage.build_model(KWS, dtype=d)).node_features)
                  for d in ("int8", "int16x8"))
    assert (wide[:, column["in_bits"]] == 16).all() and (wide[:, column["out_bits"]] == 16).all()
    np.testing.assert_array_equal(wide[:, column["weight_bits"]], int8[:, column["weight_bits"]])
    # int64 biases take 4 bytes more per output channel: 64 + 64 + 64 + 12 channels.
    assert wide[:, column["param_bytes"]].sum() - int8[:, column["param_bytes"]].sum() == 4 * (64 * 3 + 12)
    for name, code in (("div", 42), ("cast", 53), ("quantize", 114)):
        spec, op_name, _ = OP_SPECS[name]
        graph = perfsage.load_tflite(perfsage.build_model(spec, dtype="int8"))
        features = np.asarray(graph.node_features)
        assert features[graph.op_names.index(op_name), column["op_type"]] == code


def test_quantize_and_cast_convert_between_types() -> None:
    spec, _, _ = OP_SPECS["quantize"]
    tensors = {t["name"]: t for t in perfsage.load_tflite(perfsage.build_model(spec, dtype="int8")).tensors()}
    assert (tensors["wide"]["dtype"], tensors["narrow"]["dtype"]) == ("int16", "int8")
    assert tensors["rq"]["quantization"]["scale"][0] == pytest.approx(2 * tensors["c"]["quantization"]["scale"][0])
    # A float32 model has no quantisation to change: the converter writes no QUANTIZE there.
    assert "QUANTIZE" not in perfsage.load_tflite(perfsage.build_model(spec, dtype="float32")).op_names
    with pytest.raises(perfsage.PerfSageError, match="writes no operator: its quantize and dequantize layers fold away"):
        perfsage.build_model({"inputs": [{"name": "x", "shape": [1, 4]}], "layers": [{"op": "quantize"}]},
                             dtype="float32")
    spec, _, _ = OP_SPECS["cast"]
    tensors = {t["name"]: t for t in perfsage.load_tflite(perfsage.build_model(spec, dtype="int16x8")).tensors()}
    assert [tensors[n]["dtype"] for n in ("c", "ci", "cf", "cq")] == ["int16", "int32", "float32", "int16"]


def test_binary_layers_take_a_scalar_or_per_channel_constant() -> None:
    # Why: real models carry input normalisation and unfolded batch norms as MUL, ADD and SUB with
    # constant operands, which Vela prices far from the same ops on two activations.
    spec, _, _ = OP_SPECS["constant_operands"]
    for dtype, stored in (("int8", "int8"), ("int16x8", "int16"), ("float32", "float32")):
        graph = perfsage.load_tflite(perfsage.build_model(spec, seed=3, dtype=dtype))
        tensors = {t["name"]: t for t in graph.tensors()}
        shapes = {n: tensors[f"{n}/constant"]["shape"] for n in ("bn_scale", "bn_shift", "offset")}
        assert shapes == {"bn_scale": (16,), "bn_shift": (16,), "offset": (1,)}
        assert all(tensors[f"{n}/constant"]["dtype"] == stored and tensors[f"{n}/constant"]["is_constant"]
                   for n in shapes)
        assert graph.op_names[1:] == ["MUL", "ADD", "SUB"]
        if dtype == "float32":
            continue
        q = tensors["offset/constant"]["quantization"]
        assert len(q["scale"]) == 1  # per tensor, as the converter quantises constant operands
    # The values are drawn in constant_range: a float32 model stores them as they are.
    model = perfsage.build_model(spec, seed=3, dtype="float32")
    interpreter = Interpreter(model_content=bytes(model))
    details = {d["name"]: d for d in interpreter.get_tensor_details()}
    interpreter.allocate_tensors()
    values = interpreter.get_tensor(details["offset/constant"]["index"])
    scale = interpreter.get_tensor(details["bn_scale/constant"]["index"])
    assert 0.25 <= values[0] <= 0.5 and scale.min() >= 0.5 and scale.max() <= 2.0 and scale.std() > 0


def test_an_output_that_is_a_fused_relu_names_its_producers_value() -> None:
    # The relu folds into the mul before it; naming it as an output still works (the affine
    # variant puts a mul before a relu that is a model output).
    spec = {"inputs": [{"name": "x", "shape": [1, 8, 8, 4]}], "outputs": ["r"],
            "layers": [{"name": "c", "op": "conv2d", "filters": 4, "kernel": 1}, {"name": "r", "op": "relu"}]}
    graph = perfsage.load_tflite(perfsage.build_model(spec))
    assert graph.op_names == ["CONV_2D"] and graph.operators()[0]["options"]["fused_activation"] == 1


def test_layers_after_dequantize_are_a_float_section_until_quantize() -> None:
    # Why: converters leave what they cannot quantize in float32 inside int8 models (7 of the 146
    # real models do), and Vela leaves those operators to the CPU; the data need such sections.
    spec, _, _ = OP_SPECS["dequantize"]
    for dtype, activation in (("int8", "int8"), ("int16x8", "int16")):
        graph = perfsage.load_tflite(perfsage.build_model(spec, dtype=dtype))
        tensors = {t["name"]: t for t in graph.tensors()}
        assert [tensors[n]["dtype"] for n in ("c", "dq", "sg", "sw", "fc", "q", "c2")] == \
            [activation] + ["float32"] * 4 + [activation] * 2
        assert len(tensors["sw"]["quantization"]["scale"]) == 0 and len(tensors["q"]["quantization"]["scale"]) == 1
        names = [t["name"] for t in graph.tensors()]
        float_conv = next(op for op in graph.operators() if names.index("fc") in op["outputs"])
        assert [graph.tensors()[i]["dtype"] for i in float_conv["inputs"]] == ["float32"] * 3  # input, weights, bias
    # A float32 model has nothing to dequantize: neither DEQUANTIZE nor QUANTIZE is written.
    ops = perfsage.load_tflite(perfsage.build_model(spec, dtype="float32")).op_names
    assert "DEQUANTIZE" not in ops and "QUANTIZE" not in ops and ops.count("CONV_2D") == 3


def _recurrent_layout(graph: perfsage.Graph, op_name: str) -> tuple:
    """The first ``op_name`` operator's inputs and intermediates: absent (None), or dtype, rank,
    whether variable and how many scales; and its fused activation."""
    tensors = graph.tensors()
    op = next(op for op in graph.operators() if op["name"] == op_name)

    def describe(i: int) -> object:
        if i < 0:
            return None
        t = tensors[i]
        return t["dtype"], len(t["shape"]), t["is_variable"], len(t["quantization"]["scale"])

    return [describe(i) for i in op["inputs"]], [describe(i) for i in op["intermediates"]], op["options"]["fused_activation"]


def test_int8_lstm_is_laid_out_as_the_converter_writes_it(models_dir: Path) -> None:
    # Why: Vela and the runtimes price the LSTM by this layout (24 inputs, which are absent, int16
    # cell state, the intermediates integer kernels read); TFLM's LSTM example is the converter's.
    real = perfsage.load_tflite((models_dir / "tflm_trained_lstm_int8.tflite").read_bytes())
    ours = perfsage.load_tflite(perfsage.build_model(OP_SPECS["lstm"][0], dtype="int8"))
    assert _recurrent_layout(ours, "UNIDIRECTIONAL_SEQUENCE_LSTM") == _recurrent_layout(real, "UNIDIRECTIONAL_SEQUENCE_LSTM")
    tensors = ours.tensors()
    lstm = ours.operators()[0]
    x, out = tensors[lstm["inputs"][0]], tensors[lstm["outputs"][0]]
    output_state, cell_state = (tensors[i] for i in lstm["inputs"][18:20])
    hidden = tensors[lstm["intermediates"][4]]
    for t in (output_state, hidden):
        assert np.array_equal(t["quantization"]["scale"], out["quantization"]["scale"])
        assert np.array_equal(t["quantization"]["zero_point"], out["quantization"]["zero_point"])
    # The integer kernel takes a power-of-two cell scale of at most 2^-9.
    assert np.log2(cell_state["quantization"]["scale"][0]) in range(-15, -8)
    for gate in range(4):
        weights, bias = tensors[lstm["inputs"][1 + gate]], tensors[lstm["inputs"][12 + gate]]
        np.testing.assert_allclose(bias["quantization"]["scale"],
                                   x["quantization"]["scale"] * weights["quantization"]["scale"], rtol=1e-6)


def test_int8_svdf_is_laid_out_as_tflites_integer_kernel_reads_it() -> None:
    # Why: LiteRT's integer SVDF reads int16 time weights and state and takes only a ReLU (TFLM's
    # keyword model keeps both in int8, which LiteRT misreads); the bias is at the state's scale
    # times the time weights'.
    model = perfsage.build_model(OP_SPECS["svdf"][0], dtype="int8")
    graph = perfsage.load_tflite(model)
    inputs, intermediates, activation = _recurrent_layout(graph, "SVDF")
    assert inputs == [("int8", 2, False, 1), ("int8", 2, False, 1), ("int16", 2, False, 1), ("int32", 1, False, 1),
                      ("int16", 2, True, 1)]
    assert intermediates == [] and activation == 1  # RELU
    tensors = graph.tensors()
    svdf = graph.operators()[0]
    time_weights, bias, state = (tensors[i] for i in svdf["inputs"][2:5])
    np.testing.assert_allclose(bias["quantization"]["scale"],
                               state["quantization"]["scale"] * time_weights["quantization"]["scale"], rtol=1e-6)
    interpreter = Interpreter(model_content=model)
    assert np.abs(interpreter.get_tensor(svdf["inputs"][2])).max() <= 511  # 10 bits


@pytest.mark.parametrize("name", ["lstm", "svdf"])
def test_int8_recurrent_layers_compute_what_the_float32_ones_do(name: str) -> None:
    # Why: quantisation parameters that do not fit the values (a saturated state, a wrong bias
    # scale) still load and run; only the numbers tell.
    spec = OP_SPECS[name][0]
    x = np.random.default_rng(0).uniform(-1, 1, size=spec["inputs"][0]["shape"]).astype(np.float32)
    outputs = {}
    for dtype in ("int8", "float32"):
        interpreter = Interpreter(model_content=perfsage.build_model(spec, seed=3, dtype=dtype))
        interpreter.allocate_tensors()
        d, o = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        if dtype == "int8":
            scale, zero = d["quantization"]
            interpreter.set_tensor(d["index"], np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8))
        else:
            interpreter.set_tensor(d["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(o["index"]).astype(np.float32)
        scale, zero = o["quantization"] if dtype == "int8" else (1.0, 0)
        outputs[dtype] = (y - zero) * scale
    spread = np.ptp(outputs["float32"])
    assert np.abs(outputs["int8"] - outputs["float32"]).max() < 0.1 * spread
    assert np.corrcoef(outputs["int8"].ravel(), outputs["float32"].ravel())[0, 1] > 0.99


def test_input_range_sets_its_int8_quantisation() -> None:
    # A streaming model's saved state spans its writer's range: no requantisation where it is used.
    spec = copy.deepcopy(KWS)
    spec["inputs"][0]["range"] = [0, 4]
    graph = perfsage.load_tflite(perfsage.build_model(spec))
    quantization = graph.tensors()[graph.operators()[0]["inputs"][0]]["quantization"]
    assert quantization["scale"][0] == pytest.approx(4 / 255) and quantization["zero_point"][0] == -128


def test_float32_model_has_float_weights() -> None:
    graph = perfsage.load_tflite(perfsage.build_model(KWS, dtype="float32"))
    assert {t["dtype"] for t in graph.tensors()} == {"float32", "int32"}  # int32: reshape's shape


def bad(spec_change) -> dict:
    spec = copy.deepcopy(KWS)
    spec_change(spec)
    return spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["layers"][0].update(filters=0), r"layer 0 'c1' \(conv2d\): 'filters' must be positive"),
        (lambda s: s["layers"][0].update(kernel=[60, 4], padding="valid"),
         r"layer 0 'c1' \(conv2d\): kernel 60 is larger than the height size 49"),
        (lambda s: s["layers"][2].update(op="conv3x3"), r"layer 2 'dw1' \(conv3x3\): unknown op 'conv3x3'"),
        (lambda s: s["layers"][4].update(inputs=["nowhere"]), r"layer 4 'pool'.*input 'nowhere' is neither"),
        (lambda s: s["layers"][0].update(stride_h=2), r"unknown parameter 'stride_h' for conv2d"),
        (lambda s: s["layers"].insert(3, {"name": "a", "op": "add", "inputs": ["dw1", "x"]}),
         r"layer 3 'a' \(add\): shapes \[1, 25, 5, 64\] and \[1, 49, 10, 1\] do not broadcast"),
        (lambda s: s["layers"][5].update(shape=[1, 65]), r"layer 5 'flat' \(reshape\): cannot reshape"),
        (lambda s: s["layers"].insert(6, {"name": "sp", "op": "split", "num_splits": 5}),
         r"layer 6 'sp' \(split\): dimension 64 does not split into 5 equal parts"),
        # Only multi-output layers have "<layer>:<i>" names.
        (lambda s: s["layers"][6].update(inputs=["flat:0"]), r"layer 6 'fc'.*input 'flat:0' is neither"),
        (lambda s: s["layers"].insert(6, {"name": "am", "op": "arg_max"}),
         r"layer 7 'fc' \(dense\): input 'am' holds int32 values, not the model's int8 activations; only cast"),
        (lambda s: s["layers"].__setitem__(slice(6, 6), [{"name": "f", "op": "dequantize"},
                                                           {"name": "a", "op": "add", "inputs": ["f", "flat"]}]),
         r"layer 7 'a' \(add\): input 'flat' holds int8 values beside float32 ones \(a float section\); dequantize it"),
        (lambda s: s["layers"].__setitem__(slice(6, 6), [{"name": "f", "op": "cast"},
                                                           {"name": "d", "op": "dequantize"}]),
         r"layer 7 'd' \(dequantize\): takes the model's int8 or int16 activations, got float32 values"),
        (lambda s: s["layers"].insert(6, {"name": "w", "op": "quantize", "to": "int16"}),
         r"layer 7 'fc' \(dense\): input 'w' holds int16 values, not the model's int8 activations"),
        (lambda s: s.update(layers=s["layers"][:6] + [{"name": "i", "op": "cast", "to": "int8"},
                                                      {"name": "q", "op": "quantize"}] + s["layers"][6:]),
         r"layer 7 'q' \(quantize\): takes int8 or int16 activations or float32 values, got unquantised int8"),
        (lambda s: s["layers"].insert(6, {"name": "k", "op": "mul", "constant": "row"}),
         r"layer 6 'k' \(mul\): 'constant' must be one of scalar, channel"),
        (lambda s: s["layers"].insert(6, {"name": "k", "op": "add", "constant": "scalar", "constant_range": [1, 1]}),
         r"layer 6 'k' \(add\): 'constant_range' must be \[lo, hi\] with lo < hi"),
        (lambda s: s["layers"].insert(6, {"name": "k", "op": "sub", "constant": "scalar", "inputs": ["flat", "flat"]}),
         r"layer 6 'k' \(sub\): takes one input beside its constant, got 2"),
        (lambda s: s["layers"].insert(6, {"name": "q", "op": "quantize", "range_scale": 0}),
         r"layer 6 'q' \(quantize\): 'range_scale' must be positive"),
        (lambda s: s["layers"].insert(6, {"name": "q", "op": "quantize", "to": "uint8"}),
         r"layer 6 'q' \(quantize\): 'to' must be one of int8, int16"),
        (lambda s: s["layers"][6].update(weights_of="c1"),
         r"layer 6 'fc' \(dense\): 'weights_of' must name an earlier dense layer of 12 units on 64 features, got 'c1'"),
        # The shared bias is at the first input's scale times the weights'.
        (lambda s: s["layers"].extend([{"name": "d", "op": "dense", "units": 64, "inputs": ["flat"]},
                                       {"name": "fc2", "op": "dense", "units": 12, "weights_of": "fc"}]),
         r"layer 9 'fc2' \(dense\): shares the weights of 'fc', whose input has another int8 scale"),
        (lambda s: s["layers"].insert(6, {"name": "a", "op": "add", "inputs": ["flat", "flat"], "bound": 0}),
         r"layer 6 'a' \(add\): 'bound' must be positive"),
        (lambda s: s["layers"].insert(6, {"name": "l", "op": "lstm", "units": 8}),
         r"layer 6 'l' \(lstm\): needs a \[batch, time, features\] input, got \[1, 64\]"),
        (lambda s: s["layers"][1].update(name="c1"), r"layer 1 'c1' \(relu\): name 'c1' is already used"),
        (lambda s: s["inputs"][0].update(shape=[1, 0, 10, 1]), r"input 'x' has a non-positive size"),
        (lambda s: s["inputs"][0].update(range=[1, 1]), r"inputs\[0\].range must be \[lo, hi\] with lo < hi"),
        (lambda s: s.update(outputs=["missing"]), r"output 'missing' is not a layer"),
        (lambda s: s.update(layers=[]), r"'layers' must be a non-empty list"),
    ],
)
def test_invalid_specs_name_the_layer(change, message: str) -> None:
    with pytest.raises(perfsage.PerfSageError, match=message):
        perfsage.build_model(bad(change))


def test_malformed_arguments() -> None:
    with pytest.raises(perfsage.PerfSageError, match="invalid JSON at byte"):
        perfsage.build_model('{"inputs": [}')
    with pytest.raises(ValueError, match="dtype must be 'int8', 'float32' or 'int16x8', got 'int16'"):
        perfsage.build_model(KWS, dtype="int16")
    with pytest.raises(ValueError, match="seed must be an int"):
        perfsage.build_model(KWS, seed=-1)


# Why Vela leaves layers of the large specs on the CPU: DEPTH_TO_SPACE, which the Ethos-U55 lacks,
# and the attention's two BATCH_MATMULs in 16x8 (Vela has no int16 matmul). Everything else Vela
# supports runs on the NPU.
VELA_CPU_REASONS = {("image_all_ops", "int8"): ["Unsupported opType"],
                    ("transformer", "int16x8"): ["Matmul with unsupported IFM type"] * 2}


@pytest.mark.parametrize("dtype", ["int8", "int16x8"])
@pytest.mark.parametrize("name", ["kws", "transformer", "image_all_ops"])
def test_integer_models_compile_with_vela(name: str, dtype: str, tmp_path: Path) -> None:
    result = compile_with_vela(perfsage.build_model(spec_of(name, dtype), dtype=dtype), tmp_path)
    assert result.npu_operators > 0
    assert result.cpu_reasons == VELA_CPU_REASONS.get((name, dtype), [])
    assert result.cpu_operators == len(result.cpu_reasons)


@pytest.mark.parametrize(("name", "dtype"), [(name, "int8") for name in sorted(OP_SPECS)] +
                         [(name, "int16x8") for name in sorted(set(OP_SPECS) & set(INT16X8))])
def test_op_models_get_vela_labels_with_the_expected_placement(name: str, dtype: str) -> None:
    # Why: each op is in the data for the cost Vela gives it; placing it elsewhere than we expect
    # (or failing to compile) means the writer produced something the converter would not. Vela
    # takes int16 activations wherever it takes int8 ones for these ops.
    pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install ethos-u-vela)")
    spec, op_name, placement = OP_SPECS[name]
    model = perfsage.build_model(spec, dtype=dtype)
    _, costs = perfsage.labelers.get_labeler("ethos-u55-256").label_operators(model)
    graph = perfsage.load_tflite(model)
    assert op_name in graph.op_names
    assert {costs.placement[i] for i, op in enumerate(graph.op_names) if op == op_name} == {placement}
