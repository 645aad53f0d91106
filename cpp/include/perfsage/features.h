// Node and graph feature columns.
//
// Column order and names are part of the feature schema; kFeatureSchemaVersion changes whenever
// they do, so a trained predictor can refuse features it was not trained on.
//
// Node columns: op type (builtin code), shapes of the first activation input and of the first
// output padded to rank 4 by leading 1s (ranks above 4 fold their leading dimensions into the first),
// dtypes as storage bits, quantisation flags, kernel/stride/dilation/padding/activation and other
// options, MACs, parameter and activation bytes, subgraph and call depth.
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

constexpr int32_t kFeatureSchemaVersion = 1;

const std::vector<std::string>& node_feature_names();
const std::vector<std::string>& graph_feature_names();

}  // namespace perfsage
