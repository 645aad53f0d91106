// The model being written: tensors with their quantisation, operators, and the flatbuffer or Model.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "tflite_options.h"
#include "utf8.h"
#include "writer_graph.h"

namespace perfsage::writer {
namespace {

// The bytes of a std::vector or an InlineVec of plain values.
template <typename Values>
std::vector<uint8_t> as_bytes(const Values& values) {
  std::vector<uint8_t> out(values.size() * sizeof(values[0]));
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// The version of the schema the writer writes and the Model records.
constexpr uint32_t kSchemaVersion = 3;

// A string as the reader gets it back: the flatbuffer holds it up to its first NUL (the writer
// passes C strings), and the reader keeps valid UTF-8 only. Names are nearly always plain ASCII,
// which needs neither: they move.
std::string as_read(std::string&& text) {
  const bool ascii = std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte != 0 && byte < 0x80;
  });
  return ascii ? std::move(text) : utf8_sanitize(std::string_view(text.c_str()));
}

}  // namespace

int64_t elements(const Shape& shape) {
  int64_t n = 1;
  for (int32_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string type_name(fb::TensorType type) {
  switch (type) {
    case fb::TensorType::INT8: return "int8";
    case fb::TensorType::INT16: return "int16";
    case fb::TensorType::INT32: return "int32";
    case fb::TensorType::INT64: return "int64";
    case fb::TensorType::FLOAT32: return "float32";
    default: break;
  }
  return fb::EnumNameTensorType(type);
}

std::string value_kind(const TensorDef& t) {
  const bool plain_integers = t.scale.empty() && t.type != fb::TensorType::FLOAT32 && t.type != fb::TensorType::INT32;
  return (plain_integers ? "unquantised " : "") + type_name(t.type);
}

fb::ActivationFunctionType fused(Activation a) {
  switch (a) {
    case Activation::kRelu: return fb::ActivationFunctionType::RELU;
    case Activation::kRelu6: return fb::ActivationFunctionType::RELU6;
    case Activation::kNone: break;
  }
  return fb::ActivationFunctionType::NONE;
}

fb::TensorType GraphBuilder::activation_type() const {
  return int8() ? fb::TensorType::INT8 : int16() ? fb::TensorType::INT16 : fb::TensorType::FLOAT32;
}

float GraphBuilder::absmax(const TensorDef& t) { return std::max(std::abs(t.lo), std::abs(t.hi)); }

int32_t GraphBuilder::add_tensor(TensorDef t) {
  if (!t.data.empty()) t.data_bytes = t.data.size();
  tensors_.push_back(std::move(t));
  return static_cast<int32_t>(tensors_.size() - 1);
}

int32_t GraphBuilder::find(const std::string& name) const {
  for (size_t i = tensors_.size(); i-- > 0;)
    if (tensors_[i].name == name) return static_cast<int32_t>(i);
  return -1;
}

int32_t GraphBuilder::activation(const std::string& name, const Shape& shape, float lo, float hi) {
  return activation_of(activation_type(), name, shape, lo, hi);
}

int32_t GraphBuilder::activation_of(fb::TensorType type, const std::string& name, const Shape& shape, float lo,
                                    float hi) {
  TensorDef t;
  t.name = name;
  t.shape = shape;
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  if (hi - lo < 1e-6f) hi = lo + 1e-6f;
  t.lo = lo;
  t.hi = hi;
  t.type = type;
  if (type == fb::TensorType::INT8) {
    const float scale = (hi - lo) / 255.0f;
    const auto zp = static_cast<int64_t>(std::lround(-128.0 - lo / scale));
    t.scale = {scale};
    t.zero_point = {std::clamp<int64_t>(zp, -128, 127)};
  } else if (type == fb::TensorType::INT16) {
    t.scale = {std::max(-lo, hi) / 32767.0f};
    t.zero_point = {0};
  }
  return add_tensor(std::move(t));
}

int32_t GraphBuilder::same_as(const std::string& name, const Shape& shape, int32_t like) {
  TensorDef t = tensors_[static_cast<size_t>(like)];
  t.name = name;
  t.shape = shape;
  t.data.clear();
  t.data_bytes = 0;
  return add_tensor(std::move(t));
}

int32_t GraphBuilder::fixed(const std::string& name, const Shape& shape, float lo, float hi, float scale,
                            int64_t zp) {
  const int32_t t = activation(name, shape, lo, hi);
  if (quantized()) {
    tensors_[static_cast<size_t>(t)].scale = {int16() ? 1.0f / 32768.0f : scale};
    tensors_[static_cast<size_t>(t)].zero_point = {int16() ? 0 : zp};
  }
  return t;
}

int32_t GraphBuilder::const_int32(const std::string& name, const Shape& values, Shape shape) {
  TensorDef t;
  t.name = name;
  t.shape = shape.empty() ? Shape{static_cast<int32_t>(values.size())} : shape;
  t.type = fb::TensorType::INT32;
  t.data = as_bytes(values);
  return add_tensor(std::move(t));
}

int32_t GraphBuilder::unquantized(const std::string& name, const Shape& shape, fb::TensorType type, float lo,
                                  float hi) {
  TensorDef t;
  t.name = name;
  t.shape = shape;
  t.type = type;
  t.lo = lo;
  t.hi = hi;
  return add_tensor(std::move(t));
}

int32_t GraphBuilder::weights(const std::string& name, const Shape& shape, int64_t fan_in, int64_t fan_out,
                              int32_t channel_axis, int bits) {
  const float limit = std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
  const auto count = static_cast<size_t>(elements(shape));
  const bool per_tensor = channel_axis < 0;
  Slices slices;
  slices.channels = per_tensor ? size_t{1} : static_cast<size_t>(shape[static_cast<size_t>(channel_axis)]);
  slices.inner = per_tensor ? count : 1;
  for (size_t d = static_cast<size_t>(channel_axis) + 1; !per_tensor && d < shape.size(); ++d)
    slices.inner *= static_cast<size_t>(shape[d]);
  slices.outer = count / (slices.channels * slices.inner);
  std::vector<float> w;
  if (sizes_only()) {
    rng_.skip(count * draws_per_weight(weight_values_.distribution));
  } else {
    w.resize(count);
    draw_weights(rng_, weight_values_.distribution, limit, w);
    if (weight_values_.sparsity > 0.0) prune_weights(w, weight_values_.sparsity);
  }
  TensorDef t;
  t.name = name;
  t.shape = shape;
  t.lo = -limit;
  t.hi = limit;
  if (!quantized()) {
    t.data_bytes = count * sizeof(float);
    t.data = as_bytes(w);
    return add_tensor(std::move(t));
  }
  const bool wide = bits > 8;
  const auto qmax = static_cast<float>((1 << (bits - 1)) - 1);
  t.type = wide ? fb::TensorType::INT16 : fb::TensorType::INT8;
  t.quantized_dimension = per_tensor ? 0 : channel_axis;
  if (sizes_only()) {
    t.values = expected_summary(weight_values_, slices, bits);
    t.scale.assign(slices.channels, limit / qmax);
    t.zero_point.assign(slices.channels, 0);
    t.data_bytes = count * (wide ? sizeof(int16_t) : sizeof(int8_t));
    return add_tensor(std::move(t));
  }
  const std::vector<int16_t> q = quantize_weights(w, slices, qmax, t.scale);
  t.zero_point.assign(slices.channels, 0);
  if (wide) {
    t.data = as_bytes(q);
  } else {
    t.data.resize(q.size());
    for (size_t i = 0; i < q.size(); ++i) t.data[i] = static_cast<uint8_t>(static_cast<int8_t>(q[i]));
  }
  return add_tensor(std::move(t));
}

int32_t GraphBuilder::bias(const std::string& name, int32_t n, int32_t input, int32_t weight, bool zero) {
  std::vector<float> b;
  if (sizes_only()) {
    if (!zero) rng_.skip(static_cast<uint64_t>(n));
  } else {
    b.assign(static_cast<size_t>(n), 0.0f);
    if (!zero)
      for (float& x : b) x = rng_.uniform(0.1f);
  }
  TensorDef t;
  t.name = name;
  t.shape = {n};
  if (!quantized()) {
    t.data_bytes = static_cast<uint64_t>(n) * sizeof(float);
    t.data = as_bytes(b);
    return add_tensor(std::move(t));
  }
  const TensorDef& in = tensors_[static_cast<size_t>(input)];
  const TensorDef& w = tensors_[static_cast<size_t>(weight)];
  // One scale per weight scale: per channel, or one for per-tensor weights (recurrent layers).
  const float in_scale = in.scale[0];
  t.scale.resize(w.scale.size());
  std::transform(w.scale.begin(), w.scale.end(), t.scale.begin(), [in_scale](float s) { return in_scale * s; });
  t.zero_point.assign(w.scale.size(), 0);
  t.type = int16() ? fb::TensorType::INT64 : fb::TensorType::INT32;
  if (sizes_only()) {
    t.data_bytes = static_cast<uint64_t>(n) * (int16() ? sizeof(int64_t) : sizeof(int32_t));
    return add_tensor(std::move(t));
  }
  std::vector<int64_t> q(static_cast<size_t>(n));
  for (size_t c = 0; c < q.size(); ++c) q[c] = std::llround(b[c] / t.scale[c % t.scale.size()]);
  if (int16())
    t.data = as_bytes(q);
  else
    t.data = as_bytes(std::vector<int32_t>(q.begin(), q.end()));
  return add_tensor(std::move(t));
}

int32_t GraphBuilder::const_values(const std::string& name, const std::vector<float>& values) {
  TensorDef t;
  t.name = name;
  t.shape = {static_cast<int32_t>(values.size())};
  t.lo = std::min(0.0f, *std::min_element(values.begin(), values.end()));
  t.hi = std::max(1e-6f, *std::max_element(values.begin(), values.end()));
  if (!quantized()) {
    t.data = as_bytes(values);
    return add_tensor(std::move(t));
  }
  if (int16()) {  // an int16 operand of int16 arithmetic, symmetric as the activations
    const float scale = std::max(-t.lo, t.hi) / 32767.0f;
    std::vector<int16_t> q;
    for (float v : values) q.push_back(static_cast<int16_t>(std::clamp<long>(std::lround(v / scale), -32767, 32767)));
    t.type = fb::TensorType::INT16;
    t.scale = {scale};
    t.zero_point = {0};
    t.data = as_bytes(q);
    return add_tensor(std::move(t));
  }
  const float scale = (t.hi - t.lo) / 255.0f;
  const int64_t zp = std::clamp<int64_t>(std::lround(-128.0 - t.lo / scale), -128, 127);
  t.type = fb::TensorType::INT8;
  t.scale = {scale};
  t.zero_point = {zp};
  for (float v : values)
    t.data.push_back(static_cast<uint8_t>(static_cast<int8_t>(
        std::clamp<long>(std::lround(v / scale) + zp, -128, 127))));
  return add_tensor(std::move(t));
}

int32_t GraphBuilder::state(const std::string& name, const Shape& shape, fb::TensorType type, float scale,
                            int64_t zero_point) {
  const float levels = type == fb::TensorType::INT16 ? 32768.0f : 128.0f;
  const int32_t i = unquantized(name, shape, int8() ? type : fb::TensorType::FLOAT32, -levels * scale,
                                (levels - 1.0f) * scale);
  TensorDef& t = tensors_[static_cast<size_t>(i)];
  t.variable = true;
  if (int8()) {
    t.scale = {scale};
    t.zero_point = {zero_point};
  }
  return i;
}

int32_t GraphBuilder::intermediate(const std::string& name, int32_t like) {
  if (like >= 0) return same_as(name, {0}, like);
  TensorDef t;
  t.name = name;
  t.shape = {0};
  return add_tensor(std::move(t));
}

void GraphBuilder::add_op(fb::BuiltinOperator code, decltype(OpDef::inputs) inputs, decltype(OpDef::outputs) outputs,
                          fb::BuiltinOptions type, OptionsFn options, std::vector<int32_t> intermediates) {
  ops_.push_back(OpDef{code, std::move(inputs), std::move(outputs), type, std::move(options), std::move(intermediates)});
}

std::vector<uint32_t> GraphBuilder::buffer_of_tensors() const {
  std::vector<uint32_t> buffer_of(tensors_.size(), 0);
  uint32_t next = 1;
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (tensors_[i].data_bytes > 0) buffer_of[i] = next++;
  return buffer_of;
}

std::vector<fb::BuiltinOperator> GraphBuilder::operator_codes(std::vector<uint32_t>& code_of_op) const {
  std::vector<fb::BuiltinOperator> codes;
  code_of_op.clear();
  for (const OpDef& op : ops_) {
    const auto it = std::find(codes.begin(), codes.end(), op.code);
    code_of_op.push_back(static_cast<uint32_t>(it - codes.begin()));
    if (it == codes.end()) codes.push_back(op.code);
  }
  return codes;
}

std::vector<uint8_t> GraphBuilder::serialize(const std::vector<int32_t>& inputs,
                                             const std::vector<int32_t>& outputs,
                                             const std::string& description) const {
  if (sizes_only()) throw std::logic_error("GraphBuilder::serialize: the builder kept the constants' sizes only");
  size_t constant_bytes = 0;
  for (const auto& t : tensors_) constant_bytes += t.data.size();
  Builder fbb(constant_bytes + 4096 + 256 * tensors_.size());

  std::vector<flatbuffers::Offset<fb::Buffer>> buffers = {fb::CreateBuffer(fbb)};
  const std::vector<uint32_t> buffer_of = buffer_of_tensors();
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (buffer_of[i] > 0) buffers.push_back(fb::CreateBufferDirect(fbb, &tensors_[i].data));
  std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorDef& t = tensors_[i];
    flatbuffers::Offset<fb::QuantizationParameters> quant = 0;
    if (!t.scale.empty()) {  // the vectors in the order CreateQuantizationParametersDirect makes them
      const auto scale = fbb.CreateVector(t.scale.data(), t.scale.size());
      const auto zero_point = fbb.CreateVector(t.zero_point.data(), t.zero_point.size());
      quant = fb::CreateQuantizationParameters(fbb, 0, 0, scale, zero_point, fb::QuantizationDetails::NONE, 0,
                                               t.quantized_dimension);
    }
    // The shape and the name in the order CreateTensorDirect makes them.
    const auto shape = fbb.CreateVector(t.shape.data(), t.shape.size());
    const auto name = fbb.CreateString(t.name.c_str());
    tensors.push_back(fb::CreateTensor(fbb, shape, t.type, buffer_of[i], name, quant, t.variable));
  }
  std::vector<uint32_t> code_of_op;
  std::vector<flatbuffers::Offset<fb::OperatorCode>> codes;
  for (const fb::BuiltinOperator code : operator_codes(code_of_op)) {
    const auto value = static_cast<int32_t>(code);
    codes.push_back(fb::CreateOperatorCode(fbb, static_cast<int8_t>(std::min(value, 127)), 0, 1, code));
  }
  std::vector<flatbuffers::Offset<fb::Operator>> ops;
  for (size_t i = 0; i < ops_.size(); ++i) {
    const OpDef& op = ops_[i];
    const auto options = op.options ? op.options(fbb) : flatbuffers::Offset<void>();
    // The vectors in the order CreateOperatorDirect makes them. Only operators with intermediates
    // get the field, so that the others' bytes stay as they were.
    const auto inputs_of = fbb.CreateVector(op.inputs.data(), op.inputs.size());
    const auto outputs_of = fbb.CreateVector(op.outputs.data(), op.outputs.size());
    const auto intermediates_of = op.intermediates.empty() ? 0 : fbb.CreateVector(op.intermediates);
    ops.push_back(fb::CreateOperator(fbb, code_of_op[i], inputs_of, outputs_of, op.options_type, options, 0,
                                     fb::CustomOptionsFormat::FLEXBUFFERS, 0, intermediates_of));
  }
  const auto subgraph = fb::CreateSubGraphDirect(fbb, &tensors, &inputs, &outputs, &ops, "main");
  std::vector<flatbuffers::Offset<fb::SubGraph>> subgraphs = {subgraph};
  const auto model = fb::CreateModelDirect(fbb, kSchemaVersion, &codes, &subgraphs, description.c_str(), &buffers);
  fb::FinishModelBuffer(fbb, model);
  return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

Model GraphBuilder::to_model(const std::vector<int32_t>& inputs, const std::vector<int32_t>& outputs,
                             const std::string& description, const std::string& source) && {
  Model model;
  model.source = source;
  model.version = kSchemaVersion;
  model.description = as_read(std::string(description));
  model.subgraphs.resize(1);
  Subgraph& sg = model.subgraphs[0];
  sg.name = "main";
  sg.inputs = inputs;
  sg.outputs = outputs;

  const std::vector<uint32_t> buffer_of = buffer_of_tensors();
  model.num_buffers = 1;
  sg.tensors.resize(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    TensorDef& def = tensors_[i];
    Tensor& t = sg.tensors[i];
    t.name = as_read(std::move(def.name));
    t.shape = std::move(def.shape);
    t.dtype = static_cast<DType>(def.type);
    t.buffer = buffer_of[i];
    t.data_bytes = def.data_bytes;
    t.is_constant = def.data_bytes > 0;
    t.is_variable = def.variable;
    t.values = def.values;
    model.num_buffers += buffer_of[i] > 0;
    if (def.scale.empty()) continue;  // serialize writes no quantisation table
    t.quantization.scale = std::move(def.scale);
    t.quantization.zero_point = std::move(def.zero_point);
    t.quantization.quantized_dimension = def.quantized_dimension;
  }

  std::vector<uint32_t> code_of_op;
  const std::vector<fb::BuiltinOperator> codes = operator_codes(code_of_op);
  // Options reach the Model as the reader reads them, from a one-operator flatbuffer each: one
  // reading of every options table, whichever way a model arrives.
  Builder scratch(256);
  sg.operators.resize(ops_.size());
  for (size_t i = 0; i < ops_.size(); ++i) {
    OpDef& def = ops_[i];
    Operator& op = sg.operators[i];
    op.opcode_index = static_cast<int32_t>(code_of_op[i]);
    op.builtin_code = static_cast<int32_t>(codes[code_of_op[i]]);
    op.inputs = std::move(def.inputs);
    op.outputs = std::move(def.outputs);
    op.intermediates = std::move(def.intermediates);
    op.options_type = static_cast<int32_t>(def.options_type);
    if (!def.options) continue;
    scratch.Clear();
    const auto options = def.options(scratch);
    scratch.Finish(fb::CreateOperator(scratch, 0, 0, 0, def.options_type, options));
    read_options(*flatbuffers::GetRoot<fb::Operator>(scratch.GetBufferPointer()), op.options);
  }
  return model;
}

}  // namespace perfsage::writer
