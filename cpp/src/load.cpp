#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>

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
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Starting a thread costs about as much as reading a few small models, so small batches use fewer.
  constexpr size_t kItemsPerThread = 8;
  const size_t useful = std::max<size_t>(1, (items.size() + kItemsPerThread - 1) / kItemsPerThread);
  threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), useful));

  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::vector<std::exception_ptr> fatal(static_cast<size_t>(threads));
  auto work = [&](size_t worker) {
    try {
      for (size_t i = next++; i < items.size() && !stop; i = next++) {
        const LoadItem& item = items[i];
        try {
          results[i].graph = item.data ? load_graph(item.data, item.size, item.label)
                                       : load_graph_file(item.path);
        } catch (const Error& e) {
          results[i].error = e.what();
        }
      }
    } catch (...) {  // not an input problem (e.g. bad_alloc): stop everyone, rethrow on the caller
      fatal[worker] = std::current_exception();
      stop = true;
    }
  };
  if (threads == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(threads));
    for (int t = 0; t < threads; ++t) pool.emplace_back(work, static_cast<size_t>(t));
    for (auto& th : pool) th.join();
  }
  for (const auto& e : fatal)
    if (e) std::rethrow_exception(e);
  return results;
}

}  // namespace perfsage
