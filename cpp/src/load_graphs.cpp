// Bytes, files or specs to Graphs: one at a time, or a batch on worker threads with errors per item.
#include <algorithm>

#include "parallel.h"
#include "spec_feed.h"
#include "perfsage/error.h"
#include "perfsage/graph.h"
#include "perfsage/spec_graph.h"

namespace perfsage {
namespace {

// Starting a thread costs about as much as reading a few small models, so small batches use fewer.
int batch_threads(size_t count, int threads) {
  constexpr int64_t kItemsPerThread = 8;
  const int64_t useful = std::max<int64_t>(1, (static_cast<int64_t>(count) + kItemsPerThread - 1) / kItemsPerThread);
  return static_cast<int>(std::min<int64_t>(resolve_threads(threads), useful));
}

// The result of graph_of(): an input error (perfsage::Error) is the item's error; anything else
// (bad_alloc) stops the batch and reaches the caller.
template <typename GraphOf>
void build_into(LoadResult& result, const GraphOf& graph_of) {
  try {
    result.graph = graph_of();
  } catch (const Error& e) {
    result.error = e.what();
  }
}

}  // namespace

std::shared_ptr<const Graph> load_graph(const uint8_t* data, size_t size, const std::string& source) {
  return std::make_shared<const Graph>(std::make_shared<const Model>(read_model(data, size, source)));
}

std::shared_ptr<const Graph> load_graph_file(const std::string& path) {
  return std::make_shared<const Graph>(std::make_shared<const Model>(read_model_file(path)));
}

std::vector<LoadResult> load_many(const std::vector<LoadItem>& items, int threads) {
  std::vector<LoadResult> results(items.size());
  parallel_for(static_cast<int64_t>(items.size()), batch_threads(items.size(), threads), [&](int64_t i) {
    const LoadItem& item = items[static_cast<size_t>(i)];
    build_into(results[static_cast<size_t>(i)], [&] {
      return item.data ? load_graph(item.data, item.size, item.label) : load_graph_file(item.path);
    });
  });
  return results;
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

std::vector<LoadResult> spec_graphs(const SpecFeed& feed, int threads) {
  std::vector<LoadResult> results(feed.count);
  for_each_fed(feed, 1, batch_threads(feed.count, threads), [&](int64_t i, int64_t, std::vector<SpecItem>& items) {
    SpecItem& item = items[static_cast<size_t>(i)];
    // The writer names the spec's layer; the batch adds which spec it was.
    build_into(results[static_cast<size_t>(i)], [&] {
      try {
        return spec_graph(std::move(item));
      } catch (const Error& e) {
        fail(item.source, e.what());
      }
    });
  });
  return results;
}

std::vector<LoadResult> spec_graphs(std::vector<SpecItem> items, int threads) {
  return spec_graphs(feed_of(items), threads);
}

SpecFeed feed_of(std::vector<SpecItem>& items) {
  return {items.size(), [&items](size_t i) { return std::move(items[i]); }, nullptr};
}

}  // namespace perfsage
