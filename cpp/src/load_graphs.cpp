// Bytes, files or specs to Graphs: one at a time, or a batch on worker threads with errors per item.
#include <algorithm>

#include "parallel.h"
#include "perfsage/error.h"
#include "perfsage/graph.h"
#include "perfsage/spec_graph.h"

namespace perfsage {
namespace {

// Runs graph_of(i) for every item on worker threads. Input errors (perfsage::Error) are the item's
// result; anything else (bad_alloc) stops the batch and reaches the caller.
template <typename GraphOf>
std::vector<LoadResult> build_each(size_t count, int threads, const GraphOf& graph_of) {
  std::vector<LoadResult> results(count);
  // Starting a thread costs about as much as reading a few small models, so small batches use fewer.
  constexpr int64_t kItemsPerThread = 8;
  const auto n = static_cast<int64_t>(count);
  const int64_t useful = std::max<int64_t>(1, (n + kItemsPerThread - 1) / kItemsPerThread);
  threads = static_cast<int>(std::min<int64_t>(resolve_threads(threads), useful));
  parallel_for(n, threads, [&](int64_t i) {
    try {
      results[static_cast<size_t>(i)].graph = graph_of(static_cast<size_t>(i));
    } catch (const Error& e) {
      results[static_cast<size_t>(i)].error = e.what();
    }
  });
  return results;
}

}  // namespace

std::shared_ptr<const Graph> load_graph(const uint8_t* data, size_t size, const std::string& source) {
  return std::make_shared<const Graph>(std::make_shared<const Model>(read_model(data, size, source)));
}

std::shared_ptr<const Graph> load_graph_file(const std::string& path) {
  return std::make_shared<const Graph>(std::make_shared<const Model>(read_model_file(path)));
}

std::vector<LoadResult> load_many(const std::vector<LoadItem>& items, int threads) {
  return build_each(items.size(), threads, [&](size_t i) {
    const LoadItem& item = items[i];
    return item.data ? load_graph(item.data, item.size, item.label) : load_graph_file(item.path);
  });
}

std::shared_ptr<const Graph> spec_graph(const ModelSpec& spec, uint64_t seed, WeightType type,
                                        const std::string& source) {
  return std::make_shared<const Graph>(std::make_shared<const Model>(spec_model(spec, seed, type, source)));
}

std::shared_ptr<const Graph> spec_graph(SpecItem&& item) {
  const ModelSpec spec = std::holds_alternative<std::string>(item.spec)
                             ? parse_spec(std::get<std::string>(item.spec))
                             : parse_spec(std::move(std::get<JsonValue>(item.spec)));
  return spec_graph(spec, item.seed, item.type, item.source);
}

std::vector<LoadResult> spec_graphs(std::vector<SpecItem> items, int threads) {
  return build_each(items.size(), threads, [&](size_t i) {
    // The writer names the spec's layer; the batch adds which spec it was.
    try {
      return spec_graph(std::move(items[i]));
    } catch (const Error& e) {
      fail(items[i].source, e.what());
    }
  });
}

}  // namespace perfsage
