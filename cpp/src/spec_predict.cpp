#include "perfsage/spec_predict.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "spec_feed.h"
#include "perfsage/error.h"
#include "perfsage/graph.h"

namespace perfsage {
namespace {

// Specs per worker task: a few graphs for the network's matrix products, few enough to spread a
// batch of 50 large specs evenly over the threads (16 a task left one of two threads idle for a
// third of such a batch).
constexpr int64_t kSpecsPerTask = 4;

}  // namespace

std::vector<std::string> predict_specs(const SageNetwork& network, const SpecFeed& feed, int threads, float* out) {
  const int64_t T = network.config().num_targets;
  std::vector<std::string> errors(feed.count);
  for_each_fed(feed, kSpecsPerTask, threads, [&](int64_t lo, int64_t hi, std::vector<SpecItem>& items) {
    std::vector<std::shared_ptr<const Graph>> graphs;
    std::vector<GraphInput> inputs;
    std::vector<int64_t> rows;
    for (int64_t i = lo; i < hi; ++i) {
      SpecItem& item = items[static_cast<size_t>(i)];
      try {
        graphs.push_back(spec_graph(std::move(item)));  // moves the spec out; the source stays
        inputs.push_back(graph_input(*graphs.back()));
        rows.push_back(i);
      } catch (const Error& e) {
        errors[static_cast<size_t>(i)] = Error(item.source + ": " + e.what()).what();  // as spec_graphs says it
        std::fill(out + i * T, out + (i + 1) * T, std::numeric_limits<float>::quiet_NaN());
      }
    }
    std::vector<float> predicted(inputs.size() * static_cast<size_t>(T));
    network.predict(inputs, 1, predicted.data());
    for (size_t k = 0; k < rows.size(); ++k)
      std::copy(predicted.begin() + static_cast<int64_t>(k) * T, predicted.begin() + static_cast<int64_t>(k + 1) * T,
                out + rows[k] * T);
  });
  return errors;
}

std::vector<std::string> predict_specs(const SageNetwork& network, std::vector<SpecItem> items, int threads,
                                       float* out) {
  return predict_specs(network, feed_of(items), threads, out);
}

}  // namespace perfsage
