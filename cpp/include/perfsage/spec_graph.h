// Architecture spec -> Graph, without weights: the path from a NAS loop's candidates to predictions.
//
// build_model draws every weight and serialises a flatbuffer that load_graph parses again; a
// prediction reads neither the weights' values nor the file. spec_graph builds the same Model in
// memory (writer.h: spec_model) and gives the Graph load_graph(build_model(spec, seed, type))
// gives: the same nodes, edges, op types and names, features and totals, bit for bit.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "perfsage/graph.h"
#include "perfsage/spec.h"
#include "perfsage/writer.h"

namespace perfsage {

// `source` names the graph (Graph::source) and prefixes errors in a batch.
std::shared_ptr<const Graph> spec_graph(const ModelSpec& spec, uint64_t seed, WeightType type,
                                        const std::string& source);

// One item of a batch: a spec as JSON text (spec.h), parsed on the worker threads.
struct SpecItem {
  std::string spec_json;
  uint64_t seed = 0;
  WeightType type = WeightType::kInt8;
  std::string source;
};

// Builds every item's Graph on `threads` worker threads (0: all hardware threads), as load_many:
// a bad spec is that item's error ("<source>: spec: layer 3 'c' (conv2d): ..."), anything else
// (out of memory) is rethrown on the calling thread after all workers join.
std::vector<LoadResult> spec_graphs(const std::vector<SpecItem>& items, int threads);

}  // namespace perfsage
