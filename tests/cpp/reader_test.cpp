// Reader and feature tests on small hand-built models and on the shared real models.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/graph.h"
#include "perfsage/ops.h"
#include "test_models.h"

namespace perfsage {
namespace {

using testing::build_model;
using testing::OptionsKind;
using testing::TestOp;
using testing::TestSubgraph;
using testing::TestTensor;

int32_t code(const char* name) {
  const int32_t c = op_code(name);
  EXPECT_GE(c, 0) << name;
  return c;
}

void expect_error(const std::vector<uint8_t>& bytes, const std::vector<std::string>& fragments) {
  testing::expect_load_error(bytes, fragments);
}

// A float conv: input 1x8x8x3 -> CONV_2D 3x3 16 filters -> 1x8x8x16.
TestSubgraph conv_subgraph() {
  TestSubgraph sg;
  sg.tensors = {{{1, 8, 8, 3}}, {{16, 3, 3, 3}, 0, 16 * 27 * 4}, {{16}, 0, 16 * 4}, {{1, 8, 8, 16}}};
  TestOp conv{code("CONV_2D"), {0, 1, 2}, {3}, OptionsKind::kConv};
  sg.ops = {conv};
  sg.inputs = {0};
  sg.outputs = {3};
  return sg;
}

TEST(OpVocabulary, CoversEveryBuiltinWithStableNames) {
  // The op-type index is the builtin code, so names must sit at their format-defined codes.
  EXPECT_EQ(op_name(0), "ADD");
  EXPECT_EQ(op_name(3), "CONV_2D");
  EXPECT_EQ(op_name(kCustomOpCode), "CUSTOM");
  EXPECT_EQ(op_code("FULLY_CONNECTED"), 9);
  EXPECT_EQ(op_code("WHILE"), 119);
  EXPECT_GE(op_vocabulary_size(), 210);
  EXPECT_THROW(op_name(op_vocabulary_size()), std::out_of_range);
}

TEST(Reader, ReadsAHandBuiltConv) {
  // Shapes, constness and MACs of the simplest model are what the format says.
  const auto bytes = build_model({conv_subgraph()});
  const auto graph = load_graph(bytes.data(), bytes.size(), "conv");
  ASSERT_EQ(graph->num_nodes(), 1);
  EXPECT_EQ(graph->num_edges(), 0);
  const auto& tensors = graph->model().subgraphs[0].tensors;
  EXPECT_FALSE(tensors[0].is_constant);
  EXPECT_TRUE(tensors[1].is_constant);
  EXPECT_EQ(tensors[1].data_bytes, 16u * 27 * 4);
  const auto& cost = graph->node_costs()[0];
  EXPECT_EQ(cost.macs, 8 * 8 * 16 * 27);
  EXPECT_EQ(cost.param_count, 16 * 27 + 16);
  EXPECT_EQ(cost.param_bytes, (16 * 27 + 16) * 4);
  EXPECT_EQ(cost.input_activation_bytes, 8 * 8 * 3 * 4);
  EXPECT_EQ(cost.output_activation_bytes, 8 * 8 * 16 * 4);
  EXPECT_EQ(graph->totals().peak_activation_bytes, (8 * 8 * 3 + 8 * 8 * 16) * 4);
}

TEST(Reader, AlignmentColumnsOfAConv) {
  // Schema 3's columns: 3 input channels pad to 8 (x8/3) and 16 (x16/3), 16 output channels are
  // aligned (x1), width 8 is a multiple of 8; padded MACs and elements follow from those.
  const auto bytes = build_model({conv_subgraph()});
  const auto graph = load_graph(bytes.data(), bytes.size(), "conv");
  const auto& names = node_feature_names();
  ASSERT_EQ(node_feature_count(3), static_cast<int32_t>(names.size()));
  ASSERT_EQ(names[static_cast<size_t>(node_feature_count(2))], "in_c_pad8");
  auto col = [&](const std::string& n) {
    return static_cast<size_t>(std::find(names.begin(), names.end(), n) - names.begin());
  };
  auto at = [&](const std::string& n) { return graph->node_features()[col(n)]; };
  EXPECT_FLOAT_EQ(at("in_c_pad8"), 8.0f / 3.0f);
  EXPECT_FLOAT_EQ(at("in_c_pad16"), 16.0f / 3.0f);
  EXPECT_FLOAT_EQ(at("out_c_pad8"), 1.0f);
  EXPECT_FLOAT_EQ(at("out_c_pad16"), 1.0f);
  EXPECT_FLOAT_EQ(at("out_w_pad8"), 1.0f);
  EXPECT_FLOAT_EQ(at("padded_macs"), 8 * 8 * 16 * 27 * 16.0f / 3.0f);
  EXPECT_FLOAT_EQ(at("padded_in_elements"), 8 * 8 * 16);
  EXPECT_FLOAT_EQ(at("padded_out_elements"), 8 * 8 * 16);
  // An elementwise op pads its output channels only (no reduction over its input's).
  TestSubgraph sg;
  sg.tensors = {{{1, 5, 7, 20}}, {{1, 5, 7, 20}}};
  sg.ops = {{code("RELU"), {0}, {1}}};
  sg.inputs = {0};
  sg.outputs = {1};
  const auto relu_bytes = build_model({sg});
  const auto relu = load_graph(relu_bytes.data(), relu_bytes.size(), "relu");
  const float* row = relu->node_features().data();
  EXPECT_FLOAT_EQ(row[col("out_c_pad16")], 32.0f / 20.0f);
  EXPECT_FLOAT_EQ(row[col("out_c_pad8")], 24.0f / 20.0f);
  EXPECT_FLOAT_EQ(row[col("out_w_pad8")], 8.0f / 7.0f);
  EXPECT_FLOAT_EQ(row[col("padded_macs")], 5 * 7 * 20 * 32.0f / 20.0f);
  EXPECT_FLOAT_EQ(row[col("padded_out_elements")], 5 * 7 * 32);
}

TEST(Reader, ResolvesOpcodeAsMaxOfBothFields) {
  // Old converters fill only deprecated_builtin_code, new ones put 127 there for codes >= 127.
  auto sg = conv_subgraph();
  sg.ops[0].deprecated_code = 3;
  sg.ops[0].builtin_code = 0;  // ADD in the new field, CONV_2D in the old one: max wins
  const auto bytes = build_model({sg});
  const auto graph = load_graph(bytes.data(), bytes.size(), "m");
  EXPECT_EQ(graph->op(0).builtin_code, 3);
}

TEST(Reader, RejectsEmptyShortAndForeignFiles) {
  expect_error({}, {"empty file"});
  expect_error({1, 2, 3}, {"too short"});
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0};
  expect_error(png, {"no 'TFL3' file identifier"});
}

TEST(Reader, RejectsTruncatedModel) {
  // Any proper prefix of a model must fail verification, not read past the end.
  const auto bytes = build_model({conv_subgraph()});
  for (size_t n = 8; n < bytes.size(); n += 7)
    expect_error(std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(n)),
                 {"verification failed"});
}

TEST(Reader, RejectsTensorIndexOutOfRange) {
  auto sg = conv_subgraph();
  sg.ops[0].inputs[0] = 9;
  expect_error(build_model({sg}), {"subgraph 0, operator 0 (CONV_2D)", "refers to tensor 9", "4 tensors"});
}

TEST(Reader, RejectsSubgraphInputOutOfRange) {
  auto sg = conv_subgraph();
  sg.outputs = {17};
  expect_error(build_model({sg}), {"subgraph 0", "output 0 refers to tensor 17"});
}

TEST(Reader, ReadsAMissingShapeAsAScalar) {
  // TFLite and TFLM read a tensor without a shape vector as a scalar; flatbuffers' object API
  // (strip_weights) drops a scalar's empty shape vector, as converters' scalars come out.
  auto sg = conv_subgraph();
  sg.tensors.push_back({{}, 0, 4});
  sg.tensors.back().omit_shape = true;
  const auto bytes = build_model({sg});
  const auto graph = load_graph(bytes.data(), bytes.size(), "scalar");
  const auto& tensors = graph->model().subgraphs[0].tensors;
  ASSERT_EQ(tensors.size(), 5u);
  EXPECT_TRUE(tensors[4].shape.empty());
  EXPECT_EQ(graph->num_nodes(), 1);
}

TEST(Reader, RejectsNegativeDimension) {
  auto sg = conv_subgraph();
  sg.tensors[3].shape = {1, -8, 8, 16};
  expect_error(build_model({sg}), {"tensor 3", "negative"});
}

TEST(Reader, RejectsOpcodeIndexPastTable) {
  auto sg = conv_subgraph();
  sg.ops[0].opcode_index = 5;
  expect_error(build_model({sg}), {"operator 0", "opcode index 5 is past the operator code table (1 entries)"});
}

TEST(Reader, RejectsUnknownBuiltinCode) {
  auto sg = conv_subgraph();
  sg.ops[0].builtin_code = 4000;
  expect_error(build_model({sg}), {"operator 0", "unknown builtin operator code 4000"});
}

TEST(Reader, RejectsBufferIndexOutOfRange) {
  auto sg = conv_subgraph();
  sg.tensors[2].buffer = 99;
  expect_error(build_model({sg}), {"tensor 2", "refers to buffer 99"});
}

TEST(Reader, KeepsCustomCode) {
  // Vela replaces NPU subgraphs with a custom "ethos-u" operator; it must load as CUSTOM.
  TestSubgraph sg;
  sg.tensors = {{{1, 4}}, {{1, 4}}};
  TestOp op{kCustomOpCode, {0}, {1}};
  op.custom_code = "ethos-u";
  sg.ops = {op};
  sg.inputs = {0};
  sg.outputs = {1};
  const auto bytes = build_model({sg});
  const auto graph = load_graph(bytes.data(), bytes.size(), "m");
  EXPECT_EQ(graph->op(0).custom_code, "ethos-u");
  EXPECT_EQ(graph->op_types()[0], kCustomOpCode);
  EXPECT_EQ(graph->node_costs()[0].macs, 0);
}

// Names are untrusted bytes: 0xB7 (a stray continuation byte) stands for any ill-formed UTF-8.
const std::string kBadName = "conv\xB7" "kernel";
const std::string kBadNameSanitized = "conv\xEF\xBF\xBD" "kernel";

TEST(Reader, NamesEnterTheIrAsValidUtf8) {
  // A Python binding decodes names strictly; an ill-formed one once escaped as UnicodeDecodeError.
  auto sg = conv_subgraph();
  sg.tensors[1].name = kBadName;
  sg.tensors[2].name = "caf\xC3\xA9/bias";  // well-formed multibyte text is kept as it is
  TestOp custom{kCustomOpCode, {3}, {4}};
  custom.custom_code = "ethos\xFF" "u";
  sg.tensors.push_back({{1, 8, 8, 16}});
  sg.ops.push_back(custom);
  sg.outputs = {4};
  const auto bytes = build_model({sg});
  const auto graph = load_graph(bytes.data(), bytes.size(), "names.tflite");
  const auto& tensors = graph->model().subgraphs[0].tensors;
  EXPECT_EQ(tensors[1].name, kBadNameSanitized);
  EXPECT_EQ(tensors[2].name, "caf\xC3\xA9/bias");
  EXPECT_EQ(graph->op(1).custom_code, "ethos\xEF\xBF\xBD" "u");
}

TEST(Reader, ErrorsQuoteIllFormedNamesAsValidUtf8) {
  // The message must keep the file name and the sanitised tensor name, from the reader and from
  // the graph checks alike.
  auto sg = conv_subgraph();
  sg.tensors[3].name = kBadName;
  sg.tensors[3].shape = {1, -8, 8, 16};
  expect_error(build_model({sg}), {"tensor 3 '" + kBadNameSanitized + "'", "negative"});

  sg = conv_subgraph();
  sg.tensors[0].name = kBadName;
  sg.ops[0].outputs = {0};
  expect_error(build_model({sg}), {"reads its own output tensor 0 '" + kBadNameSanitized + "'"});
}

TEST(Reader, MissingFileNamesThePath) {
  try {
    load_graph_file("/nonexistent/model.tflite");
    FAIL() << "expected perfsage::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.tflite: cannot open"), std::string::npos)
        << e.what();
  }
}

TEST(Features, NamesMatchColumns) {
  // Column names are the contract with Python and with trained predictors.
  const auto bytes = build_model({conv_subgraph()});
  const auto graph = load_graph(bytes.data(), bytes.size(), "m");
  EXPECT_EQ(graph->node_features().size(), node_feature_names().size() * graph->num_nodes());
  EXPECT_EQ(graph->graph_features().size(), graph_feature_names().size());
  EXPECT_EQ(graph_feature_names().back(), "count_" + op_names().back());
}

TEST(Features, MacsPerOperatorKind) {
  // conv, depthwise, pooling, fully connected and elementwise follow the documented formulas.
  TestSubgraph sg;
  sg.tensors = {
      {{1, 16, 16, 8}},                        // 0 input
      {{1, 3, 3, 8}, 0, 72 * 4},               // 1 depthwise filter
      {{1, 8, 8, 8}},                          // 2 depthwise out (stride 2)
      {{1, 4, 4, 8}},                          // 3 pool out (2x2)
      {{1, 128}},                              // 4 reshape out
      {{1, 128}},                              // 5 relu out
      {{10, 128}, 0, 1280 * 4},                // 6 fc weights
      {{1, 10}},                               // 7 fc out
      {{2}, 2, 8},                             // 8 reshape shape (int32 constant)
  };
  TestOp dw{code("DEPTHWISE_CONV_2D"), {0, 1, -1}, {2}, OptionsKind::kDepthwise, 2};
  TestOp pool{code("MAX_POOL_2D"), {2}, {3}, OptionsKind::kPool, 2, 2};
  TestOp reshape{code("RESHAPE"), {3, 8}, {4}};
  TestOp relu{code("RELU"), {4}, {5}};
  TestOp fc{code("FULLY_CONNECTED"), {5, 6, -1}, {7}, OptionsKind::kFullyConnected};
  sg.ops = {dw, pool, reshape, relu, fc};
  sg.inputs = {0};
  sg.outputs = {7};
  const auto bytes = build_model({sg});
  const auto graph = load_graph(bytes.data(), bytes.size(), "m");
  const auto& c = graph->node_costs();
  EXPECT_EQ(c[0].macs, 8 * 8 * 8 * 9);
  EXPECT_EQ(c[1].macs, 4 * 4 * 8 * 4);
  EXPECT_EQ(c[2].macs, 0);
  EXPECT_EQ(c[3].macs, 128);
  EXPECT_EQ(c[4].macs, 128 * 10);
  EXPECT_EQ(graph->totals().macs, 8 * 8 * 8 * 9 + 4 * 4 * 8 * 4 + 128 + 1280);
  EXPECT_EQ(graph->totals().param_count, 72 + 2 + 1280);
  // The feature row carries the same numbers, and the kernel comes from the filter.
  const auto& names = node_feature_names();
  auto col = [&](const std::string& n) {
    return static_cast<size_t>(std::find(names.begin(), names.end(), n) - names.begin());
  };
  const float* row0 = graph->node_features().data();
  EXPECT_EQ(row0[col("macs")], 8 * 8 * 8 * 9);
  EXPECT_EQ(row0[col("kernel_h")], 3);
  EXPECT_EQ(row0[col("stride_h")], 2);
  EXPECT_EQ(row0[col("out_h")], 8);
  EXPECT_EQ(row0[col("padding_same")], 1);
  const float* row1 = row0 + names.size();
  EXPECT_EQ(row1[col("kernel_w")], 2);
  EXPECT_EQ(row1[col("padding_valid")], 1);
}

TEST(RealModels, AllLoadWithFiniteFeatures) {
  // Every published model in shared/data must load: converter, TFLM and Vela output alike.
  const auto models = testing::real_models();
  if (models.empty()) {
    if (testing::data_required()) FAIL() << "shared data folder missing (set PERFSAGE_DATA)";
    GTEST_SKIP() << "shared data folder missing (set PERFSAGE_DATA)";
  }
  EXPECT_EQ(models.size(), 15u);
  for (const auto& path : models) {
    SCOPED_TRACE(path);
    std::shared_ptr<const Graph> graph;
    ASSERT_NO_THROW(graph = load_graph_file(path));
    EXPECT_GT(graph->num_nodes(), 0);
    for (float v : graph->node_features()) ASSERT_TRUE(std::isfinite(v));
    for (float v : graph->graph_features()) ASSERT_TRUE(std::isfinite(v));
  }
}

}  // namespace
}  // namespace perfsage
