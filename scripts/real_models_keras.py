"""Converts one Keras catalogue model of scripts/real_models.py to quantised TFLite (in ``.venv-tf``).

``python scripts/real_models_keras.py NAME... --out DIR --seed S`` builds the model with random
weights, seeded, converts it with ``tf.lite.TFLiteConverter`` (full-integer int8, or 16x8: int16
activations with int8 weights) calibrated on seeded random inputs, writes ``DIR/NAME.tflite`` and
prints its record (real_models.converter_main); several names convert in one process, in turn.

Keras application models (``keras-app``) are built with Keras 3 (``keras.applications``,
``weights=None``: nothing is downloaded). The audio models (``keras-audio``) are defined here and
built with Keras 2 (``tf_keras``): TensorFlow's converter fuses a Keras 2 LSTM layer into one
UNIDIRECTIONAL_SEQUENCE_LSTM operator, as deployed audio models have it, while a Keras 3 LSTM
becomes a WHILE loop. GRU layers have no fused operator; they are unrolled (``unroll=True``) into
FULLY_CONNECTED, LOGISTIC, TANH and MUL operators, as microcontroller deployments do.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf
import tf_keras

from real_models import CALIBRATION_SAMPLES, ModelSpec, converter_main

# Keyword spotting's 12 classes (MLPerf Tiny KWS: 10 words, silence, unknown).
KWS_CLASSES = 12
layers = tf_keras.layers


def lstm_kws(inputs: List[Any], units: int, depth: int) -> Any:
    """Keyword spotting with ``depth`` stacked LSTMs over the feature frames, then a classifier."""
    x = inputs[0]
    for index in range(depth):
        x = layers.LSTM(units, return_sequences=index < depth - 1)(x)
    return layers.Dense(KWS_CLASSES, activation="softmax")(x)


def gru_kws(inputs: List[Any], units: int) -> Any:
    """Keyword spotting with one GRU (unrolled: no fused GRU operator exists)."""
    x = layers.GRU(units, unroll=True)(inputs[0])
    return layers.Dense(KWS_CLASSES, activation="softmax")(x)


def crnn_kws(inputs: List[Any], filters: int, units: int) -> Any:
    """CRNN keyword spotting (Arik et al. 2017 shape): strided convolutions over the log-mel image,
    frequency folded into channels, a GRU over time, a classifier."""
    x = layers.Conv2D(filters, (5, 3), strides=(2, 2), padding="same", use_bias=False)(inputs[0])
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Conv2D(filters, (3, 3), strides=(1, 2), padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)
    x = layers.GRU(units, unroll=True)(x)
    x = layers.Dense(units, activation="relu")(x)
    return layers.Dense(KWS_CLASSES, activation="softmax")(x)


def conv1d_kws(inputs: List[Any], filters: int, blocks: int) -> Any:
    """Temporal-convolution keyword spotting (TC-ResNet style): 1-D convolutions over time with the
    features as channels, residual blocks with strided shortcuts, global pooling."""
    x = layers.Conv1D(filters, 3, padding="same", use_bias=False)(inputs[0])
    for index in range(blocks):
        stride = 2 if index % 2 == 0 else 1
        shortcut = x if stride == 1 else layers.Conv1D(filters, 1, strides=stride, use_bias=False)(x)
        y = layers.Conv1D(filters, 9, strides=stride, padding="same", use_bias=False)(x)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.SeparableConv1D(filters, 9, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        x = layers.ReLU()(layers.Add()([shortcut, y]))
    x = layers.GlobalAveragePooling1D()(x)
    return layers.Dense(KWS_CLASSES, activation="softmax")(x)


def rnnoise(inputs: List[Any]) -> Any:
    """RNNoise's network (Valin 2018): 42 features per frame, three GRUs with skip concatenations,
    22 band gains in [0, 1] and a voice-activity output."""
    dense = layers.Dense(24, activation="tanh")(inputs[0])
    vad_gru = layers.GRU(24, activation="relu", return_sequences=True, unroll=True)(dense)
    vad = layers.Dense(1, activation="sigmoid")(vad_gru)
    noise_gru = layers.GRU(48, activation="relu", return_sequences=True, unroll=True)(
        layers.Concatenate()([dense, vad_gru, inputs[0]]))
    denoise_gru = layers.GRU(96, activation="relu", return_sequences=True, unroll=True)(
        layers.Concatenate()([vad_gru, noise_gru, inputs[0]]))
    gains = layers.Dense(22, activation="sigmoid")(denoise_gru)
    return [gains, vad]


def conv1d_denoiser(inputs: List[Any], filters: int, dilations: Sequence[int]) -> Any:
    """Waveform denoiser in Conv-TasNet's shape: a strided 1-D encoder, dilated residual blocks
    estimating a sigmoid mask, the masked encoding decoded by a transposed convolution."""
    encoded = layers.Conv1D(filters, 16, strides=8, padding="same", activation="relu")(inputs[0])
    x = encoded
    for dilation in dilations:
        y = layers.Conv1D(filters, 3, dilation_rate=dilation, padding="same", activation="relu")(x)
        y = layers.Conv1D(filters, 1)(y)
        x = layers.Add()([x, y])
    mask = layers.Conv1D(filters, 1, activation="sigmoid")(x)
    masked = layers.Multiply()([encoded, mask])
    return layers.Conv1DTranspose(1, 16, strides=8, padding="same")(masked)


def streaming_tcn(inputs: List[Any], filters: int, kernel: int, depth: int) -> Any:
    """A streaming temporal-convolution model (one feature frame per call): each causal layer
    concatenates its saved context with the new frame, convolves, and returns the newest
    ``kernel - 1`` frames as its next context. Inputs: the frame and each layer's context; outputs:
    the class scores and the new contexts. This is the many small CONCATENATION / STRIDED_SLICE /
    RESHAPE operators that streaming keyword spotters are made of."""
    x = inputs[0]
    new_states = []
    for index in range(depth):
        state = tf_keras.Input(shape=(kernel - 1, x.shape[-1]), batch_size=1, name=f"state{index}")
        inputs.append(state)
        window = layers.Concatenate(axis=1)([state, x])
        new_states.append(layers.Cropping1D((1, 0))(window))
        x = layers.Conv1D(filters, kernel, padding="valid", activation="relu")(window)
    x = layers.Reshape((filters,))(x)
    scores = layers.Dense(KWS_CLASSES, activation="softmax")(x)
    return [scores, *new_states]


def streaming_gru(inputs: List[Any], units: int) -> Any:
    """One step of a streaming GRU keyword spotter: the feature frame and the previous hidden
    state in, the class scores and the new hidden state out."""
    frame, hidden = inputs
    sequence, state = layers.GRU(units, unroll=True, return_state=True)(frame, initial_state=hidden)
    scores = layers.Dense(KWS_CLASSES, activation="softmax")(layers.Dense(units, activation="relu")(sequence))
    return [scores, state]


AUDIO_BUILDERS: Dict[str, Callable[..., Any]] = {
    "lstm_kws": lstm_kws, "gru_kws": gru_kws, "crnn_kws": crnn_kws, "conv1d_kws": conv1d_kws,
    "rnnoise": rnnoise, "conv1d_denoiser": conv1d_denoiser, "streaming_tcn": streaming_tcn,
    "streaming_gru": streaming_gru,
}


def build(spec: ModelSpec, seed: int) -> Any:
    """The spec's model with seeded random weights and a fixed batch of 1, as deployed: with a free
    batch dimension the converter keeps SHAPE/STRIDED_SLICE/PACK chains of int32 tensors."""
    # One process converts many models: fresh layer-name counters for each, so that a model's
    # tensor names (and so its bytes) do not depend on what was converted before it.
    keras.backend.clear_session()
    tf_keras.backend.clear_session()
    if spec.framework == "keras-app":
        keras.utils.set_random_seed(seed)
        inputs = keras.Input(shape=spec.input_shapes[0], batch_size=1)
        return getattr(keras.applications, spec.constructor)(input_tensor=inputs, weights=None, **spec.options)
    tf_keras.utils.set_random_seed(seed)
    inputs = [tf_keras.Input(shape=shape, batch_size=1, name=f"input{i}") for i, shape in enumerate(spec.input_shapes)]
    outputs = AUDIO_BUILDERS[spec.constructor](inputs, **spec.options)
    return tf_keras.Model(inputs, outputs, name=spec.name)


def _representative_data(model: Any, spec: ModelSpec, seed: int) -> Callable[[], Iterator[Dict[str, Any]]]:
    """Seeded uniform inputs keyed by input name: the converted model may order its inputs
    differently from ``model.inputs`` (streaming models with state inputs)."""
    def samples() -> Iterator[Dict[str, Any]]:
        rng = np.random.default_rng(seed)
        low, high = spec.input_range
        for _ in range(CALIBRATION_SAMPLES):
            yield {tensor.name.split(":")[0]: rng.uniform(low, high, tuple(tensor.shape)).astype(np.float32)
                   for tensor in model.inputs}

    return samples


def convert(spec: ModelSpec, seed: int) -> Tuple[bytes, Dict[str, float]]:
    """(tflite bytes, seconds per step) of ``spec`` built and converted."""
    seconds: Dict[str, float] = {}
    start = time.perf_counter()
    model = build(spec, seed)
    seconds["build"] = time.perf_counter() - start
    start = time.perf_counter()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_data(model, spec, seed)
    if spec.quantization == "16x8":
        ops_set, io_type = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8, tf.int16
    else:
        ops_set, io_type = tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.int8
    converter.target_spec.supported_ops = [ops_set]
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type
    tflite = converter.convert()
    seconds["convert"] = time.perf_counter() - start
    return tflite, seconds


def main(argv: Sequence[str]) -> int:
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__, "tf_keras": tf_keras.__version__}
    return converter_main(argv, Path(__file__).name, __doc__.splitlines()[0], convert, versions)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
