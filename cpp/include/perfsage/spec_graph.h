// Architecture spec -> Graph, without weights: the path from a NAS loop's candidates to predictions.
//
// build_model draws every weight and serialises a flatbuffer that load_graph parses again; a
// prediction reads neither the weights' values nor the file. spec_graph builds the same Model in
// memory (writer.h: spec_model) and gives the Graph load_graph(build_model(spec, seed, type))
// gives: the same nodes, edges, op types and names, features and totals, bit for bit, but for the
// two weight columns (features.h), which summarise drawn values. The spec path draws none (that
// per-weight work would double its time on small models); it gives each quantised weight tensor
// the summary its spec's "weights" (distribution, sparsity) is expected to give at its slice size
// and bits (writer_weights.cpp: expected_summary), the same whatever the seed. The tests hold the
// two within 0.1 (weight_zero_fraction) and 0.6 (weight_log2_magnitude, in bits) of the written
// model's for every operator, and within 0.01 and 0.15 for operators of more than 4096 weights,
// where sampling noise is small: the layers whose weights are worth compressing. Heavy tails
// (student_t values, or normal and laplace ones under one scale per dense tensor) leave a tensor's
// figures to its few largest drawn values, which vary from seed to seed: there the spec path gives
// the expectation, and the tests hold it within 0.75 and 2 bits of any one draw. Operators without
// integer weights get 0 on both paths.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "perfsage/graph.h"
#include "perfsage/spec.h"
#include "perfsage/writer.h"

namespace perfsage {

// `source` names the graph (Graph::source) and prefixes errors in a batch.
std::shared_ptr<const Graph> spec_graph(const ModelSpec& spec, uint64_t seed, WeightType type,
                                        const std::string& source);

// One item of a batch: a spec (spec.h) as JSON text, or as a JSON value a binding converted from
// its own objects; either is read on the worker threads.
struct SpecItem {
  std::variant<std::string, JsonValue> spec;
  uint64_t seed = 0;
  WeightType type = WeightType::kInt8;
  std::string source;
};

// The Graph of one item, its spec read as spec_graphs reads it (errors as spec_graph's, without the
// source prefix a batch adds). Moves the spec out of the item; the rest stays.
std::shared_ptr<const Graph> spec_graph(SpecItem&& item);

// A batch's items made one at a time on the calling thread: item(i) for i = 0, 1, ..., count - 1
// in order, then done() (when set). The workers start on the items made while the rest are still
// being made: a binding converting its own objects, which it can do on one thread only, converts
// the next spec while the workers build the ones before it (done() is where it lets go of its
// interpreter lock). An exception from item(i) ends the batch and reaches the caller.
struct SpecFeed {
  size_t count = 0;
  std::function<SpecItem(size_t)> item;
  std::function<void()> done;
};

// Builds every item's Graph on `threads` worker threads (0: all hardware threads), as load_many:
// a bad spec is that item's error ("<source>: spec: layer 3 'c' (conv2d): ..."), anything else
// (out of memory) is rethrown on the calling thread after all workers join.
std::vector<LoadResult> spec_graphs(const SpecFeed& feed, int threads);
// The same on items already made; their specs move into the workers.
std::vector<LoadResult> spec_graphs(std::vector<SpecItem> items, int threads);

// A feed handing over `items` (kept alive by the caller) one by one, moving each out.
SpecFeed feed_of(std::vector<SpecItem>& items);

}  // namespace perfsage
