// Predictions straight from architecture specs, for a NAS loop that has no use for the graphs.
//
// Predictor.predict on specs used to make every spec's Graph (spec_graphs), hand the Graphs to
// Python, predict them and let Python free them: the freeing alone took a sixth of a CIFAR-sized
// candidate's time, on the calling thread. Here each worker thread builds a few specs' graphs,
// predicts them and frees them; the predictions are those of SageNetwork::predict on the same
// graphs, bit for bit.
#pragma once

#include <string>
#include <vector>

#include "perfsage/sage.h"
#include "perfsage/spec_graph.h"

namespace perfsage {

// Fills out[i * T + t] with the prediction for items[i] (T = the network's targets), on `threads`
// worker threads (0: all hardware threads). Returns one message per item: empty where it was
// predicted, else its spec_graphs error ("<source>: spec: layer 3 ..."), its row then NaN.
// Errors other than bad specs (out of memory) reach the caller after the workers join.
// `feed` makes the items on the calling thread while the workers predict the ones made (spec_graph.h).
std::vector<std::string> predict_specs(const SageNetwork& network, const SpecFeed& feed, int threads, float* out);
std::vector<std::string> predict_specs(const SageNetwork& network, std::vector<SpecItem> items, int threads,
                                       float* out);

}  // namespace perfsage
