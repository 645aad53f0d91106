// Architecture specs: a small JSON description of a network that the writer turns into TFLite.
//
// A spec is a JSON object:
//   {
//     "name": "kws-17",                                   optional
//     "inputs": [{"name": "x", "shape": [1, 49, 10, 1]}],  NHWC for images; any rank >= 1
//     "layers": [ {"name": "c1", "op": "conv2d", "inputs": ["x"], ...params}, ... ],
//     "outputs": ["softmax"],                              optional: default the last layer
//     "weights": {"distribution": "normal", "sparsity": 0.5}  optional: see below
//   }
// An input may give "range": [lo, hi], the float values it spans (default [-1, 1]), which set its
// int8 scale and zero point: a streaming model's saved state spans what the layer that writes it
// gives.
// "weights" says what the writer's weight values look like (writer.h), every key optional:
//   distribution  ["uniform"] | "normal" | "laplace" | "student_t": each weight tensor's values, all
//                 with the variance of Glorot-uniform (a freshly initialised Keras layer's); normal,
//                 laplace and student_t (3 degrees of freedom: the heaviest tails, whose few large
//                 values set a scale most weights sit far below) are shaped as trained weights are
//   sparsity      [0] in [0, 0.99]: the fraction of each weight tensor zeroed by magnitude pruning
//                 (the smallest magnitudes, as TF-MOT prunes), before quantisation
//   dense         ["per_channel"] | "per_tensor": how dense layers' weights are quantised
// Biases, prelu slopes and layer norm constants keep their values whatever "weights" says. A spec
// without "weights" and one with the defaults give the same bytes.
// Layers are listed in execution order. "inputs" names earlier layers or spec inputs; when omitted
// it is the previous layer (the first layer: the first input). Names must be unique; when a name
// is omitted, the layer is called "<op>_<index>".
//
// Layer ops and their parameters (defaults in brackets). Sizes are ints or [h, w] pairs.
//   conv2d            filters, kernel, stride [1], dilation [1], padding ["same"|"valid"],
//                     activation ["none"|"relu"|"relu6"], bias [true]
//   depthwise_conv2d  kernel, stride [1], dilation [1], padding [same], depth_multiplier [1],
//                     activation [none], bias [true]
//   transpose_conv2d  filters, kernel, stride [1], padding [same], bias [true]
//   dense             units, activation [none], bias [true]; acts on the last dimension; weights_of: an
//                     earlier dense layer whose kernel and bias it shares (the time steps of an
//                     unrolled recurrent layer; in int8 its input must have that layer's input scale)
//   lstm              units, return_sequences [true]: a Keras LSTM over [batch, time, features] as the
//                     converter fuses it (UNIDIRECTIONAL_SEQUENCE_LSTM with its state in variable
//                     tensors); without return_sequences a STRIDED_SLICE keeps the last step [batch, units]
//   svdf              units, memory, rank [1]: SVDF over one frame [batch, features] with a ReLU, its
//                     last `memory` filter outputs in a variable state tensor
//   add, mul, sub     two inputs, broadcasting as numpy; activation [none] (add, sub, mul); bound: the
//                     output's known magnitude, its int8 range [-bound, bound] instead of the inputs'
//                     interval arithmetic (a recurrent state's, which would widen at every step)
//   div               two inputs, broadcasting; activation [none]. The quotient's range assumes a
//                     divisor no nearer zero than a quarter of its largest magnitude: keep divisors
//                     away from zero (e.g. the exp of a logistic, in [1, e])
//                     add, sub, mul and div take one input and a constant instead with constant
//                     ["scalar" (shape [1]) | "channel" (one value per element of the last
//                     dimension)]: values uniform in constant_range [[-1, 1] for add and sub,
//                     [0.5, 2] for mul and div], drawn from the seed, as input normalisation and
//                     unfolded batch norms carry them
//   squared_difference  two inputs
//   maximum, minimum  two inputs, broadcasting; int8 inputs and output share one scale (inputs at
//                     another are requantised, as for concat)
//   concat            two or more inputs, axis [-1]
//   split             num_splits equal parts along axis [-1]
//   split_v           sizes: the parts' sizes along axis [-1], adding up to that dimension
//   unpack            axis [0]: one output per index of that dimension, without it
//                     split, split_v and unpack have one output per part: later layers name part i
//                     "<layer>:<i>" (the layer's name alone is part 0), and so does "outputs"
//   pack              one or more inputs of one shape, stacked along a new dimension axis [0]
//                     (in [-rank - 1, rank]); int8 inputs are requantised as for concat
//   avg_pool2d, max_pool2d   pool, stride [pool], padding [valid]
//   global_avg_pool   mean over H and W, keeping them (what the converter emits: MEAN)
//   mean              axes, keep_dims [true]
//   sum, reduce_max   as mean; an int8 sum's output spans the input's range times the count summed
//   arg_max           axis [-1]: int32 indices of the largest values, without that dimension; only
//                     cast takes them
//   gather            indices: a non-empty list of constant indices into dimension axis [0]
//   cast              to ["float32" | "int32" | "int8" | "int16"]: values converted one by one,
//                     quantisation ignored (an int8 input's stored integers); the output is
//                     unquantised, an activation only when it is a float32 model's float32
//   quantize          to [the model's "int8" | "int16"], range_scale [1]: requantises int8 or int16
//                     activations to a range range_scale times the input's (int8 <-> int16 too),
//                     or quantises float32 values; folded away in float32 models (no
//                     quantisation to change: the layer's output is its input)
//   dequantize        int8 or int16 activations to float32 values; folded away in float32 models
//                     Only cast and quantize take values that are not the model's activations
//                     (arg_max's indices, their own outputs of another type), but for float32
//                     values in a quantized model (a dequantize's or a cast's): the layers that
//                     take them are a float section, written as in a float32 model (float kernels
//                     and weights, unquantised outputs) until a quantize, as converters leave the
//                     ops they do not quantize; all of such a layer's inputs must be float32
//   pad               paddings: [[before, after], ...] one pair per dimension
//   mirror_pad        paddings as pad; mode ["reflect" (each side < the dimension) | "symmetric"
//                     (each side <= the dimension)]
//   reshape           shape (one -1 allowed)
//   resize_bilinear, resize_nearest   size [h, w]
//   depth_to_space    block_size
//   softmax           beta [1.0]
//   relu, relu6, logistic, tanh, hard_swish, rsqrt   one input. A relu/relu6 whose input is the only
//                     use of a conv2d, depthwise_conv2d, dense, add, sub or mul output is fused into
//                     that operator, as TensorFlow's converter does
//   leaky_relu        alpha [0.2]
//   exp, abs          one input
//   prelu             one learnt slope per channel (the last dimension), drawn in [0, 0.3]
//   batch_matmul      two inputs, adj_x [false], adj_y [false]
//   transpose         perm
//   strided_slice     begin, end: one per dimension, as Python slices (negative from the end, clamped);
//                     strides [1 each] positive; begin_mask, end_mask [0]: bit d takes dimension d
//                     from its start / to its end
//   slice             begin, size: one per dimension; a size of -1 takes the rest of the dimension
//   squeeze           axes [every size-1 dimension]; the named dimensions must have size 1
//   expand_dims       axis: the new size-1 dimension's place, in [-rank - 1, rank]
// The data movement ops (pooling, mean, pad, reshape, resizes, depth_to_space, transpose and the
// slicing, squeeze and expand_dims ops) keep their input's int8 scale and zero point, as the
// converter writes them.
//   layer_norm        axis -1, epsilon [1e-3]; lowered to the ops the converter emits for Keras
//                     LayerNormalization: MEAN, SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, SUB, MUL,
//                     MUL, ADD
// "bias": false gives a zero bias tensor, as the converter writes for bias-free layers.
// int16x8 models take every op but arg_max, depth_to_space, hard_swish, squared_difference and
// layer_norm, which LiteRT has no 16x8 kernel for, and lstm and svdf (written for int8 only).
// Anything else — an unknown op or parameter, a channel mismatch, a non-positive size, a kernel
// larger than its padded input, a dangling input name — is a perfsage::Error naming the layer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "perfsage/json.h"

namespace perfsage {

struct SpecInput {
  std::string name;
  std::vector<int32_t> shape;
  float lo = -1.0f, hi = 1.0f;  // "range"
};

struct SpecLayer {
  std::string name;
  std::string op;
  std::vector<std::string> inputs;
  // Everything but name, op and inputs: a JSON object of the layer's members in the spec's order,
  // each key once (the first of a repeated key). A layer has a handful, so JsonValue::find's linear
  // search costs less than a map's nodes, one allocation each.
  JsonValue params;
};

enum class WeightDistribution { kUniform, kNormal, kLaplace, kStudentT };

// The spec's "weights": how the writer draws weight values, and how it quantises dense layers'.
struct SpecWeights {
  WeightDistribution distribution = WeightDistribution::kUniform;
  double sparsity = 0.0;  // in [0, kMaxSparsity]
  // "dense": "per_tensor": FULLY_CONNECTED weights get one scale for the whole tensor, as TFLite
  // converters quantised dense layers before per-channel dense quantisation and as TFLite Micro and
  // MLPerf Tiny models carry them; by default ("per_channel") one scale per output unit.
  bool dense_per_tensor = false;
};

// The largest "sparsity" a spec may ask for: a tensor keeps at least 1% of its weights.
constexpr double kMaxSparsity = 0.99;

struct ModelSpec {
  std::string name;
  std::vector<SpecInput> inputs;
  std::vector<SpecLayer> layers;
  std::vector<std::string> outputs;
  SpecWeights weights;
};

// Reads a spec from JSON; structural problems (missing fields, wrong types) are errors naming the
// layer. Semantic checks (shapes, channels) happen when the writer builds the model.
ModelSpec parse_spec(const std::string& json);
// The same from a JSON value already parsed (or converted by a binding from its language's own
// dicts and lists, without writing JSON text).
ModelSpec parse_spec(JsonValue root);

}  // namespace perfsage
