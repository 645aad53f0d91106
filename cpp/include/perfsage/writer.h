// The TFLite writer: architecture spec (spec.h) + seed -> a valid .tflite flatbuffer.
//
// Three flavours. float32: float weights, biases and activations. int8: full-integer quantisation
// as TensorFlow's converter emits it with int8 inputs and outputs — int8 activations with
// per-tensor scale and zero point, per-channel symmetric int8 conv/depthwise/dense weights, int32
// biases at input_scale * weight_scale, fixed output scales where the runtime requires them
// (softmax and logistic 1/256 at -128, tanh 1/128 at 0), and the input's scale kept by operators
// that move data without arithmetic (pooling, reshape, pad, transpose, resize, depth-to-space).
// int16x8: the 16x8 scheme TensorFlow's converter writes with
// EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 — int16 activations with symmetric
// per-tensor scales (zero point 0), int8 weights as in int8, int64 biases, fixed outputs at 1/32768
// and 0, and ADD/SUB with general (not power-of-two) scales; a layer without a 16x8 kernel in
// LiteRT is an error naming it.
// Activation ranges are estimated from the weights' statistics, not calibrated on data.
//
// Weights are Glorot-uniform (Keras's default initialiser) from a generator seeded with `seed`,
// so sizes and compressibility are those of a freshly initialised model, unless the spec's
// "weights" (spec.h) asks for normal, laplace or Student-t values of the same variance, for
// magnitude pruning, or for dense weights quantised per tensor: trained and pruned models, whose
// weights a compiler like Vela compresses. The same
// spec, seed and dtype always give identical bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "perfsage/model.h"
#include "perfsage/spec.h"

namespace perfsage {

enum class WeightType { kFloat32, kInt8, kInt16x8 };

// The type named "int8", "float32" or "int16x8"; std::invalid_argument naming them otherwise.
WeightType weight_type(const std::string& name);

// The spec ops (spec.h) the writer builds in models of `type`.
std::vector<std::string> layer_ops(WeightType type);

std::vector<uint8_t> build_model(const ModelSpec& spec, uint64_t seed, WeightType type);
std::vector<uint8_t> build_model_json(const std::string& spec_json, uint64_t seed, WeightType type);

// The Model that read_model(build_model(spec, seed, type), source) gives, built without drawing
// weights or writing a flatbuffer: the same tensors (names, shapes, types, buffers and their sizes,
// activation quantisation), operators and options, so the same Graph, features and predictions.
// Three things differ: file_bytes is 0 (there is no file), weight and bias scales are nominal (a
// weight slice's scale is its Glorot limit over the largest level, not its largest drawn magnitude;
// a bias's follows from it), neither read by features or predictions, and large quantised weight
// tensors carry an expected ValueSummary rather than their values' (see spec_graph.h). Bad specs
// fail as in build_model.
Model spec_model(const ModelSpec& spec, uint64_t seed, WeightType type, const std::string& source);

// Name of the metadata entry listing the buffers strip_weights emptied (little-endian uint32s).
constexpr const char* kStrippedBuffersMetadata = "perfsage.stripped_buffers";
// Name of the metadata entry keeping the ValueSummary (model.h) of each emptied int8/int16 buffer:
// 28-byte little-endian records of buffer u32, count u64, zeros u64, log2_magnitude_sum float64.
constexpr const char* kWeightSummariesMetadata = "perfsage.weight_summaries";

// A copy of a model with every constant buffer emptied but every shape kept, so a dataset can
// store graphs in a few KB; the reader still treats the emptied tensors as constants and gives
// the same features (the weight features from the summaries it keeps of integer buffers). Stripping a stripped model returns it unchanged. Throws perfsage::Error
// (naming `source`) if the bytes are not a valid model.
std::vector<uint8_t> strip_weights(const uint8_t* data, size_t size, const std::string& source);

}  // namespace perfsage
