#include "test_models.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include <gtest/gtest.h>

#include "perfsage/error.h"
#include "perfsage/graph.h"
#include "perfsage/tflite_generated.h"

namespace perfsage::testing {
namespace fs = std::filesystem;
namespace fb = ::perfsage::tflite;

std::string data_dir() {
  const char* env = std::getenv("PERFSAGE_DATA");
  if (!env || !*env) env = std::getenv("PERFSAGE_DATA_DEFAULT");
  if (!env || !*env) return "";
  std::error_code ec;
  return fs::is_directory(env, ec) ? std::string(env) : std::string();
}

bool data_required() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::vector<std::string> real_models() {
  std::vector<std::string> out;
  const std::string dir = data_dir();
  if (dir.empty() || !fs::is_directory(fs::path(dir) / "models")) return out;
  for (const auto& entry : fs::directory_iterator(fs::path(dir) / "models"))
    if (entry.path().extension() == ".tflite") out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<uint8_t> build_model(const std::vector<TestSubgraph>& subgraphs) {
  flatbuffers::FlatBufferBuilder b;
  std::vector<flatbuffers::Offset<fb::Buffer>> buffers = {fb::CreateBuffer(b)};
  std::vector<flatbuffers::Offset<fb::OperatorCode>> codes;
  std::map<std::pair<int32_t, std::string>, int32_t> code_index;
  std::vector<flatbuffers::Offset<fb::SubGraph>> sgs;

  for (const TestSubgraph& sg : subgraphs) {
    std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
    for (size_t i = 0; i < sg.tensors.size(); ++i) {
      const TestTensor& t = sg.tensors[i];
      uint32_t buffer = 0;
      if (t.constant_bytes > 0) {
        std::vector<uint8_t> data(t.constant_bytes);
        for (size_t k = 0; k < data.size(); ++k) data[k] = static_cast<uint8_t>(k * 31 + 7);
        buffer = static_cast<uint32_t>(buffers.size());
        buffers.push_back(fb::CreateBufferDirect(b, &data));
      }
      if (t.buffer >= 0) buffer = static_cast<uint32_t>(t.buffer);
      const std::string name = t.name.empty() ? "t" + std::to_string(i) : t.name;
      tensors.push_back(fb::CreateTensorDirect(b, t.omit_shape ? nullptr : &t.shape,
                                               static_cast<fb::TensorType>(t.type), buffer,
                                               name.c_str()));
    }
    std::vector<flatbuffers::Offset<fb::Operator>> ops;
    for (const TestOp& op : sg.ops) {
      const auto key = std::make_pair(op.builtin_code, op.custom_code);
      if (!code_index.count(key)) {
        code_index[key] = static_cast<int32_t>(codes.size());
        const int8_t deprecated = op.deprecated_code >= 0 ? static_cast<int8_t>(op.deprecated_code)
                                                          : static_cast<int8_t>(std::min(op.builtin_code, 127));
        codes.push_back(fb::CreateOperatorCodeDirect(
            b, deprecated, op.custom_code.empty() ? nullptr : op.custom_code.c_str(), 1,
            static_cast<fb::BuiltinOperator>(op.builtin_code)));
      }
      const uint32_t opcode = op.opcode_index >= 0 ? static_cast<uint32_t>(op.opcode_index)
                                                   : static_cast<uint32_t>(code_index[key]);
      fb::BuiltinOptions type = fb::BuiltinOptions::NONE;
      flatbuffers::Offset<void> options;
      switch (op.options) {
        case OptionsKind::kConv:
          type = fb::BuiltinOptions::Conv2DOptions;
          options = fb::CreateConv2DOptions(b, fb::Padding::SAME, op.stride, op.stride).Union();
          break;
        case OptionsKind::kDepthwise:
          type = fb::BuiltinOptions::DepthwiseConv2DOptions;
          options = fb::CreateDepthwiseConv2DOptions(b, fb::Padding::SAME, op.stride, op.stride, 1).Union();
          break;
        case OptionsKind::kPool:
          type = fb::BuiltinOptions::Pool2DOptions;
          options = fb::CreatePool2DOptions(b, fb::Padding::VALID, op.stride, op.stride, op.filter,
                                            op.filter).Union();
          break;
        case OptionsKind::kFullyConnected:
          type = fb::BuiltinOptions::FullyConnectedOptions;
          options = fb::CreateFullyConnectedOptions(b).Union();
          break;
        case OptionsKind::kWhile:
          type = fb::BuiltinOptions::WhileOptions;
          options = fb::CreateWhileOptions(b, op.subgraphs.at(0), op.subgraphs.at(1)).Union();
          break;
        case OptionsKind::kIf:
          type = fb::BuiltinOptions::IfOptions;
          options = fb::CreateIfOptions(b, op.subgraphs.at(0), op.subgraphs.at(1)).Union();
          break;
        case OptionsKind::kConcatenation:
          type = fb::BuiltinOptions::ConcatenationOptions;
          options = fb::CreateConcatenationOptions(b, op.axis).Union();
          break;
        case OptionsKind::kPack:
          type = fb::BuiltinOptions::PackOptions;
          options = fb::CreatePackOptions(b, static_cast<int32_t>(op.inputs.size()), op.axis).Union();
          break;
        case OptionsKind::kNone:
          break;
      }
      ops.push_back(fb::CreateOperatorDirect(b, opcode, &op.inputs, &op.outputs, type, options));
    }
    sgs.push_back(fb::CreateSubGraphDirect(b, &tensors, &sg.inputs, &sg.outputs, &ops));
  }
  auto model = fb::CreateModelDirect(b, 3, &codes, &sgs, "perfsage test", &buffers);
  fb::FinishModelBuffer(b, model);
  return std::vector<uint8_t>(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
}

void expect_load_error(const std::vector<uint8_t>& bytes, const std::vector<std::string>& fragments) {
  try {
    load_graph(bytes.data(), bytes.size(), "test.tflite");
    ADD_FAILURE() << "expected perfsage::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("test.tflite: ", 0), 0u) << message;
    for (const auto& f : fragments) EXPECT_NE(message.find(f), std::string::npos) << message;
  }
}

}  // namespace perfsage::testing
