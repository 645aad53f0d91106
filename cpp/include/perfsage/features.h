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
// and for float weights (float32 models: both 0 throughout).
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

// Schema 2 appended the two weight columns; schema 1 is its first node columns, so a network
// trained on schema 1 reads those of a schema-2 row (node_feature_count) and predicts as before.
constexpr int32_t kFeatureSchemaVersion = 2;

const std::vector<std::string>& node_feature_names();
// The number of node columns of feature schema `schema` (1..kFeatureSchemaVersion), or -1.
int32_t node_feature_count(int32_t schema);
const std::vector<std::string>& graph_feature_names();

}  // namespace perfsage
