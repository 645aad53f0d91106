// Bytes or files to Graphs: one at a time, or a batch on worker threads with errors per item.
#include <algorithm>

#include "parallel.h"
#include "perfsage/error.h"
#include "perfsage/graph.h"

namespace perfsage {

std::shared_ptr<const Graph> load_graph(const uint8_t* data, size_t size, const std::string& source) {
  return std::make_shared<const Graph>(std::make_shared<const Model>(read_model(data, size, source)));
}

std::shared_ptr<const Graph> load_graph_file(const std::string& path) {
  return std::make_shared<const Graph>(std::make_shared<const Model>(read_model_file(path)));
}

std::vector<LoadResult> load_many(const std::vector<LoadItem>& items, int threads) {
  std::vector<LoadResult> results(items.size());
  // Starting a thread costs about as much as reading a few small models, so small batches use fewer.
  constexpr int64_t kItemsPerThread = 8;
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t useful = std::max<int64_t>(1, (n + kItemsPerThread - 1) / kItemsPerThread);
  threads = static_cast<int>(std::min<int64_t>(resolve_threads(threads), useful));
  // Input errors are per item; anything else (bad_alloc) stops the batch and reaches the caller.
  parallel_for(n, threads, [&](int64_t i) {
    const LoadItem& item = items[static_cast<size_t>(i)];
    try {
      results[static_cast<size_t>(i)].graph =
          item.data ? load_graph(item.data, item.size, item.label) : load_graph_file(item.path);
    } catch (const Error& e) {
      results[static_cast<size_t>(i)].error = e.what();
    }
  });
  return results;
}

}  // namespace perfsage
