// Running a SpecFeed's items through tasks on worker threads while the calling thread makes them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "parallel.h"
#include "perfsage/spec_graph.h"

namespace perfsage {

// Calls task(lo, hi, items) for the items [lo, hi) of each run of `per_task` consecutive ones, on
// `threads` workers (parallel_for_made), once the calling thread has made them with feed.item.
template <typename Task>
void for_each_fed(const SpecFeed& feed, int64_t per_task, int threads, const Task& task) {
  const auto n = static_cast<int64_t>(feed.count);
  std::vector<SpecItem> items(feed.count);
  Handover handover;
  const auto make = [&] {
    for (int64_t i = 0; i < n; ++i) {
      items[static_cast<size_t>(i)] = feed.item(static_cast<size_t>(i));
      handover.publish(i + 1);
    }
    if (feed.done) feed.done();
  };
  parallel_for_made((n + per_task - 1) / per_task, threads, handover, make, [&](int64_t t) {
    const int64_t lo = t * per_task, hi = std::min(n, lo + per_task);
    if (handover.wait(hi)) task(lo, hi, items);
  });
}

}  // namespace perfsage
