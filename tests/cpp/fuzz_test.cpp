// Mutation tests on the real models: truncations at many offsets and random byte flips. Each case
// must end in a perfsage::Error or a graph whose invariants hold; anything else (another exception,
// a crash, a sanitizer report in the asan build) fails. The flips favour the flatbuffer's structure
// over weight data, where a flip changes nothing the reader looks at.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/graph.h"
#include "perfsage/tflite_generated.h"
#include "test_models.h"

namespace perfsage {
namespace {

struct Outcome {
  int errors = 0;
  int graphs = 0;
};

void check_case(const std::vector<uint8_t>& bytes, const std::string& label, Outcome& outcome) {
  std::shared_ptr<const Graph> graph;
  try {
    graph = load_graph(bytes.data(), bytes.size(), label);
  } catch (const Error&) {
    ++outcome.errors;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": unexpected " << typeid(e).name() << ": " << e.what();
    return;
  }
  ++outcome.graphs;
  ASSERT_GT(graph->num_nodes(), 0) << label;
  ASSERT_EQ(graph->node_features().size(), node_feature_names().size() * graph->num_nodes()) << label;
  const auto& ei = graph->edge_index();
  for (int64_t e = 0; e < graph->num_edges(); ++e) {
    ASSERT_LT(ei[e], ei[graph->num_edges() + e]) << label;
    ASSERT_LT(ei[graph->num_edges() + e], graph->num_nodes()) << label;
  }
  for (float v : graph->node_features()) ASSERT_FALSE(std::isnan(v)) << label;
  for (float v : graph->graph_features()) ASSERT_FALSE(std::isnan(v)) << label;
}

// Byte ranges holding constant data; flips there are mostly uninteresting.
std::vector<std::pair<size_t, size_t>> data_ranges(const std::vector<uint8_t>& bytes) {
  std::vector<std::pair<size_t, size_t>> ranges;
  const auto* model = tflite::GetModel(bytes.data());
  if (!model->buffers()) return ranges;
  for (const auto* buffer : *model->buffers())
    if (buffer->data() && buffer->data()->size() > 0) {
      const auto begin = static_cast<size_t>(buffer->data()->data() - bytes.data());
      ranges.emplace_back(begin, begin + buffer->data()->size());
    }
  return ranges;
}

TEST(Fuzz, TruncatedAndBitFlippedRealModels) {
  const auto models = testing::real_models();
  if (models.empty()) {
    if (testing::data_required()) FAIL() << "shared data folder missing (set PERFSAGE_DATA)";
    GTEST_SKIP() << "shared data folder missing (set PERFSAGE_DATA)";
  }
  std::mt19937_64 rng(20261121);
  Outcome outcome;
  int cases = 0;
  for (const auto& path : models) {
    const auto original = testing::read_bytes(path);
    const std::string name = path.substr(path.find_last_of('/') + 1);
    // Truncations: every byte of the header region, then about 150 offsets spread over the file.
    const size_t step = std::max<size_t>(1, original.size() / 150);
    for (size_t n = 0; n < original.size(); n += (n < 64 ? 1 : step)) {
      check_case(std::vector<uint8_t>(original.begin(), original.begin() + static_cast<long>(n)),
                 name + " truncated to " + std::to_string(n), outcome);
      ++cases;
    }
    // Flips: 1 to 4 random bytes, three out of four outside constant data.
    const auto ranges = data_ranges(original);
    auto in_data = [&](size_t pos) {
      for (const auto& [b, e] : ranges)
        if (pos >= b && pos < e) return true;
      return false;
    };
    std::uniform_int_distribution<size_t> position(0, original.size() - 1);
    std::uniform_int_distribution<int> count(1, 4), value(0, 255), choose(0, 3);
    for (int trial = 0; trial < 800; ++trial) {
      auto mutated = original;
      const int flips = count(rng);
      const bool structural = choose(rng) != 0;
      for (int f = 0; f < flips; ++f) {
        size_t pos = position(rng);
        for (int tries = 0; structural && in_data(pos) && tries < 100; ++tries) pos = position(rng);
        mutated[pos] = static_cast<uint8_t>(value(rng));
      }
      check_case(mutated, name + " flip trial " + std::to_string(trial), outcome);
      ++cases;
    }
  }
  // Both outcomes must occur, or the mutations are not reaching the reader's checks.
  EXPECT_GT(outcome.errors, 1000);
  EXPECT_GT(outcome.graphs, 100);
  std::printf("fuzz: %d cases, %d clean errors, %d valid graphs\n", cases, outcome.errors, outcome.graphs);
}

}  // namespace
}  // namespace perfsage
