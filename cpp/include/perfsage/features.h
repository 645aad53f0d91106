// Node and graph feature columns.
//
// Column order and names are part of the feature schema; kFeatureSchemaVersion changes whenever
// they do, so a trained predictor can refuse features it was not trained on.
//
// Node columns: op type (builtin code), shapes of the first activation input and of the first
// output padded to rank 4 by leading 1s (ranks above 4 fold their leading dimensions into the first),
// dtypes as storage bits, quantisation flags, kernel/stride/dilation/padding/activation and other
// options, MACs, parameter and activation bytes, subgraph and call depth, and (schema 2) two
// statistics of the op's weight values, which set how far a compiler like Vela compresses them:
//   weight_zero_fraction   the fraction of the stored integer weights that are exactly 0
//   weight_log2_magnitude  the mean of log2(1 + |q|) over them (int16 weights as q / 256)
// pooled over the constant int8/int16 operands of conv, depthwise, transposed conv, conv3d, fully
// connected, batch matmul and the recurrent ops (see model.h: ValueSummary); 0 for every other op
// and for float weights (float32 models: both 0 throughout); and (schema 3) how the shapes grow
// when padded to the vector widths of NPUs and SIMD units (Ethos-U stores activations in
// 16-channel bricks and computes in blocks of 8 or 16 channels), where cost steps as shapes grow:
//   in_c_pad8, in_c_pad16, out_c_pad8, out_c_pad16, out_w_pad8
//                          ceil(d / m) * m / d for the input/output channels and output width
//                          (0 where the dimension is 0)
//   padded_macs            macs with the output channels, and the input channels where the MACs
//                          sum over them (conv, transposed conv, fully connected, batch matmul,
//                          recurrent), padded to 16
//   padded_in_elements, padded_out_elements
//                          n * h * w * ceil(c / 16) * 16 of the first input and the first output
// MACs: multiply-accumulates for conv, depthwise, transposed conv, conv3d, fully connected,
// batch matmul and the recurrent family (per step and batch row, every 2-D constant weight matrix);
// window size per output for pooling; one per input element for reductions; one per output element
// for elementwise arithmetic and activations (four for bilinear resize); zero for data movement,
// shape manipulation and custom operators.
//
// Graph columns: node/edge/tensor counts, exact totals (MACs, parameters, activation bytes,
// peak activation bytes from tensor lifetimes in execution order, input/output bytes), longest path,
// fan-in/out maxima, and one count per operator type ("count_CONV_2D", ...).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace perfsage {

// Schema 2 appended the two weight columns and schema 3 the alignment columns; an older schema is
// the first node columns of a newer one, so a network trained on it reads those of a newer row
// (node_feature_count) and predicts as before.
constexpr int32_t kFeatureSchemaVersion = 3;

const std::vector<std::string>& node_feature_names();
// The number of node columns of feature schema `schema` (1..kFeatureSchemaVersion), or -1.
int32_t node_feature_count(int32_t schema);
const std::vector<std::string>& graph_feature_names();

}  // namespace perfsage
