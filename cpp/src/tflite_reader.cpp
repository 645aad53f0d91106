// TFLite reader: verify the flatbuffer, then copy the model into plain C++ values with every index
// checked, so that nothing downstream can be led out of bounds by a file.
#include "perfsage/model.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string_view>

#include "perfsage/error.h"
#include "perfsage/ops.h"
#include "perfsage/tflite_generated.h"
#include "perfsage/writer.h"
#include "tflite_options.h"
#include "utf8.h"

namespace perfsage {
namespace fb = ::perfsage::tflite;
namespace {

constexpr int64_t kMaxElements = int64_t{1} << 48;  // far beyond any real tensor, far from overflow
constexpr size_t kMaxTables = 50'000'000;

// Where a problem is: "subgraph 0, tensor 3 'x'" or "subgraph 0, operator 12 (CONV_2D)". Turned
// into words only when something fails, so reading a valid model builds no message strings.
struct Where {
  enum class Kind { kModel, kBuffer, kSubgraph, kTensor, kOperator };
  const std::string& source;
  Kind kind = Kind::kModel;
  size_t subgraph = 0;
  size_t index = 0;
  const flatbuffers::String* tensor_name = nullptr;
  const Operator* op = nullptr;  // once its code is resolved, the operator's name joins the label

  Where at(Kind k, size_t i) const {
    Where w = *this;
    w.kind = k;
    w.index = i;
    return w;
  }
  std::string str() const;
  [[noreturn]] void fail(const std::string& what) const {
    const std::string where = str();
    perfsage::fail(source, where.empty() ? what : where + ": " + what);
  }
};

// Every string in a model is untrusted bytes: it enters the IR as valid UTF-8 (see utf8.h).
std::string text_of(const flatbuffers::String* s) {
  return s ? utf8_sanitize(std::string_view(s->c_str(), s->size())) : std::string();
}

std::string quoted(const flatbuffers::String* s) { return s ? "'" + text_of(s) + "'" : "(unnamed)"; }

std::string Where::str() const {
  const std::string sg = "subgraph " + std::to_string(subgraph);
  switch (kind) {
    case Kind::kModel: return "";
    case Kind::kBuffer: return "buffer " + std::to_string(index);
    case Kind::kSubgraph: return sg;
    case Kind::kTensor: return sg + ", tensor " + std::to_string(index) + " " + quoted(tensor_name);
    case Kind::kOperator: {
      std::string label = sg + ", operator " + std::to_string(index);
      if (op) label += " (" + (op->custom_code.empty() ? op_name(op->builtin_code) : op->custom_code) + ")";
      return label;
    }
  }
  return "";
}

// A flatbuffer vector of ints as the Model's container (a std::vector, or an InlineVec).
template <typename Ints = std::vector<int32_t>>
Ints copy_ints(const flatbuffers::Vector<int32_t>* v) {
  return v ? Ints(v->begin(), v->end()) : Ints{};
}

}  // namespace

void read_options(const fb::Operator& op, OperatorOptions& o) {
  using T = fb::BuiltinOptions;
  auto act = [](auto value) { return static_cast<int32_t>(value); };
  switch (op.builtin_options_type()) {
    case T::Conv2DOptions: {
      auto* p = op.builtin_options_as_Conv2DOptions();
      o.padding = act(p->padding());
      o.stride_h = p->stride_h(); o.stride_w = p->stride_w();
      o.dilation_h = p->dilation_h_factor(); o.dilation_w = p->dilation_w_factor();
      o.fused_activation = act(p->fused_activation_function());
      break;
    }
    case T::DepthwiseConv2DOptions: {
      auto* p = op.builtin_options_as_DepthwiseConv2DOptions();
      o.padding = act(p->padding());
      o.stride_h = p->stride_h(); o.stride_w = p->stride_w();
      o.dilation_h = p->dilation_h_factor(); o.dilation_w = p->dilation_w_factor();
      o.depth_multiplier = p->depth_multiplier();
      o.fused_activation = act(p->fused_activation_function());
      break;
    }
    case T::Conv3DOptions: {
      auto* p = op.builtin_options_as_Conv3DOptions();
      o.padding = act(p->padding());
      o.stride_d = p->stride_d(); o.stride_h = p->stride_h(); o.stride_w = p->stride_w();
      o.dilation_d = p->dilation_d_factor();
      o.dilation_h = p->dilation_h_factor(); o.dilation_w = p->dilation_w_factor();
      o.fused_activation = act(p->fused_activation_function());
      break;
    }
    case T::Pool2DOptions: {
      auto* p = op.builtin_options_as_Pool2DOptions();
      o.padding = act(p->padding());
      o.stride_h = p->stride_h(); o.stride_w = p->stride_w();
      o.filter_h = p->filter_height(); o.filter_w = p->filter_width();
      o.fused_activation = act(p->fused_activation_function());
      break;
    }
    case T::TransposeConvOptions: {
      auto* p = op.builtin_options_as_TransposeConvOptions();
      o.padding = act(p->padding());
      o.stride_h = p->stride_h(); o.stride_w = p->stride_w();
      o.fused_activation = act(p->fused_activation_function());
      break;
    }
    case T::FullyConnectedOptions:
      o.fused_activation = act(op.builtin_options_as_FullyConnectedOptions()->fused_activation_function());
      o.keep_dims = op.builtin_options_as_FullyConnectedOptions()->keep_num_dims();
      break;
    case T::ConcatenationOptions: {
      auto* p = op.builtin_options_as_ConcatenationOptions();
      o.axis = p->axis(); o.has_axis = true;
      o.fused_activation = act(p->fused_activation_function());
      break;
    }
    case T::AddOptions:
      o.fused_activation = act(op.builtin_options_as_AddOptions()->fused_activation_function());
      break;
    case T::SubOptions:
      o.fused_activation = act(op.builtin_options_as_SubOptions()->fused_activation_function());
      break;
    case T::MulOptions:
      o.fused_activation = act(op.builtin_options_as_MulOptions()->fused_activation_function());
      break;
    case T::DivOptions:
      o.fused_activation = act(op.builtin_options_as_DivOptions()->fused_activation_function());
      break;
    case T::L2NormOptions:
      o.fused_activation = act(op.builtin_options_as_L2NormOptions()->fused_activation_function());
      break;
    case T::SoftmaxOptions: o.beta = op.builtin_options_as_SoftmaxOptions()->beta(); break;
    case T::LeakyReluOptions: o.alpha = op.builtin_options_as_LeakyReluOptions()->alpha(); break;
    case T::ReducerOptions: o.keep_dims = op.builtin_options_as_ReducerOptions()->keep_dims(); break;
    case T::DepthToSpaceOptions:
      o.block_size = op.builtin_options_as_DepthToSpaceOptions()->block_size();
      break;
    case T::SpaceToDepthOptions:
      o.block_size = op.builtin_options_as_SpaceToDepthOptions()->block_size();
      break;
    case T::BatchMatMulOptions: {
      auto* p = op.builtin_options_as_BatchMatMulOptions();
      o.adj_x = p->adj_x(); o.adj_y = p->adj_y();
      break;
    }
    case T::ResizeBilinearOptions: {
      auto* p = op.builtin_options_as_ResizeBilinearOptions();
      o.align_corners = p->align_corners(); o.half_pixel_centers = p->half_pixel_centers();
      break;
    }
    case T::ResizeNearestNeighborOptions: {
      auto* p = op.builtin_options_as_ResizeNearestNeighborOptions();
      o.align_corners = p->align_corners(); o.half_pixel_centers = p->half_pixel_centers();
      break;
    }
    case T::GatherOptions:
      o.axis = op.builtin_options_as_GatherOptions()->axis(); o.has_axis = true;
      break;
    case T::PackOptions:
      o.axis = op.builtin_options_as_PackOptions()->axis(); o.has_axis = true;
      break;
    case T::UnpackOptions:
      o.axis = op.builtin_options_as_UnpackOptions()->axis(); o.has_axis = true;
      break;
    case T::SplitOptions: o.num_splits = op.builtin_options_as_SplitOptions()->num_splits(); break;
    case T::SplitVOptions: o.num_splits = op.builtin_options_as_SplitVOptions()->num_splits(); break;
    case T::LSTMOptions:
      o.fused_activation = act(op.builtin_options_as_LSTMOptions()->fused_activation_function());
      break;
    case T::UnidirectionalSequenceLSTMOptions: {
      auto* p = op.builtin_options_as_UnidirectionalSequenceLSTMOptions();
      o.fused_activation = act(p->fused_activation_function());
      o.time_major = p->time_major();
      break;
    }
    case T::BidirectionalSequenceLSTMOptions: {
      auto* p = op.builtin_options_as_BidirectionalSequenceLSTMOptions();
      o.fused_activation = act(p->fused_activation_function());
      o.time_major = p->time_major();
      break;
    }
    case T::SequenceRNNOptions: {
      auto* p = op.builtin_options_as_SequenceRNNOptions();
      o.fused_activation = act(p->fused_activation_function());
      o.time_major = p->time_major();
      break;
    }
    case T::RNNOptions:
      o.fused_activation = act(op.builtin_options_as_RNNOptions()->fused_activation_function());
      break;
    case T::SVDFOptions:
      o.fused_activation = act(op.builtin_options_as_SVDFOptions()->fused_activation_function());
      break;
    case T::IfOptions: {
      auto* p = op.builtin_options_as_IfOptions();
      o.called_subgraphs = {p->then_subgraph_index(), p->else_subgraph_index()};
      break;
    }
    case T::WhileOptions: {
      auto* p = op.builtin_options_as_WhileOptions();
      o.called_subgraphs = {p->cond_subgraph_index(), p->body_subgraph_index()};
      break;
    }
    case T::CallOnceOptions:
      o.called_subgraphs = {op.builtin_options_as_CallOnceOptions()->init_subgraph_index()};
      break;
    default:
      break;
  }
}

namespace {

// What the tensors see of the model's buffers.
struct Buffers {
  std::vector<uint64_t> bytes;          // each buffer's data size
  std::vector<const uint8_t*> data;     // its data, inline or external; null when it has none
  std::vector<char> stripped;           // emptied by strip_weights
  std::vector<ValueSummary> summaries;  // a stripped buffer's summary, as strip_weights kept it
};

// A little-endian unsigned integer of `n` bytes from a flatbuffers byte vector.
uint64_t little_endian(const flatbuffers::Vector<uint8_t>& v, flatbuffers::uoffset_t at, int n) {
  uint64_t out = 0;
  for (int k = 0; k < n; ++k) out |= static_cast<uint64_t>(v.Get(at + static_cast<flatbuffers::uoffset_t>(k))) << (8 * k);
  return out;
}

void read_tensor(const fb::Tensor& src, const Buffers& buffers, Where here, Tensor& t) {
  const std::vector<uint64_t>& buffer_bytes = buffers.bytes;
  const std::vector<char>& stripped = buffers.stripped;
  here.tensor_name = src.name();
  t.name = text_of(src.name());
  // No shape is a scalar, as TFLite and TFLM read it: flatbuffers' object API (which strip_weights
  // packs with) and other writers leave out a scalar's empty shape vector.
  t.shape = copy_ints<decltype(t.shape)>(src.shape());
  int64_t elements = 1;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] < 0)
      here.fail("shape dimension " + std::to_string(d) + " is negative (" +
                         std::to_string(t.shape[d]) + ")");
    if (t.shape[d] > 0 && elements > kMaxElements / t.shape[d])
      here.fail("shape has more than 2^48 elements");
    elements *= t.shape[d];
  }
  t.shape_signature = copy_ints(src.shape_signature());
  for (int32_t dim : t.shape_signature)
    if (dim < -1) here.fail("shape_signature has dimension " + std::to_string(dim));

  const int type = static_cast<int>(src.type());
  if (type < 0 || type > static_cast<int>(DType::kFloat8E5M2))
    here.fail("unknown tensor type code " + std::to_string(type));
  t.dtype = static_cast<DType>(type);

  t.buffer = src.buffer();
  if (t.buffer >= buffer_bytes.size() && !(t.buffer == 0 && buffer_bytes.empty()))
    here.fail("refers to buffer " + std::to_string(t.buffer) + " but the model has " +
                       std::to_string(buffer_bytes.size()) + " buffers");
  t.data_bytes = buffer_bytes.empty() ? 0 : buffer_bytes[t.buffer];
  t.is_constant = t.data_bytes > 0 || (!stripped.empty() && stripped[t.buffer]);
  if (t.data_bytes > 0 && (t.dtype == DType::kInt8 || t.dtype == DType::kInt16))
    t.values = summarize_values(buffers.data[t.buffer], t.data_bytes, t.dtype);
  else if (t.is_constant && !buffers.summaries.empty())
    t.values = buffers.summaries[t.buffer];
  t.is_variable = src.is_variable();
  t.is_sparse = src.sparsity() != nullptr;

  if (const fb::QuantizationParameters* q = src.quantization()) {
    if (q->scale()) t.quantization.scale.assign(q->scale()->begin(), q->scale()->end());
    if (q->zero_point())
      t.quantization.zero_point.assign(q->zero_point()->begin(), q->zero_point()->end());
    t.quantization.quantized_dimension = q->quantized_dimension();
    // quantized_dimension is not checked against the rank: real converters write per-channel
    // biases of rank 1 with the filter's channel axis (3), and runtimes accept them.
  }
}

template <typename List>
void check_tensor_list(const List& indices, size_t num_tensors, bool allow_omitted, const Where& where,
                       const char* what) {
  for (size_t i = 0; i < indices.size(); ++i) {
    const int32_t index = indices[i];
    if ((index == -1 && allow_omitted) || (index >= 0 && static_cast<size_t>(index) < num_tensors))
      continue;
    where.fail(std::string(what) + " " + std::to_string(i) + " refers to tensor " +
                        std::to_string(index) + " but the subgraph has " +
                        std::to_string(num_tensors) + " tensors");
  }
}

// strip_weights' summaries of the integer buffers it emptied: records of buffer u32, count u64,
// zeros u64 and the log2 sum's float64 bits, little-endian.
void read_summaries(const fb::Model& src, const fb::Metadata& entry, const Where& here, Buffers& buffers) {
  constexpr flatbuffers::uoffset_t kRecord = 28;
  if (entry.buffer() >= buffers.bytes.size()) here.fail("metadata '" + std::string(kWeightSummariesMetadata) + "' points past the buffers");
  buffers.summaries.assign(buffers.bytes.size(), ValueSummary{});
  const auto* list = src.buffers()->Get(entry.buffer())->data();
  const flatbuffers::uoffset_t list_bytes = list ? list->size() : 0;
  if (list_bytes % kRecord != 0) here.fail("weight summary list is not a list of 28-byte records");
  for (flatbuffers::uoffset_t k = 0; k < list_bytes; k += kRecord) {
    const auto b = static_cast<uint32_t>(little_endian(*list, k, 4));
    if (b >= buffers.summaries.size())
      here.fail("weight summary list names buffer " + std::to_string(b) + " of " + std::to_string(buffers.summaries.size()));
    ValueSummary& s = buffers.summaries[b];
    s.count = static_cast<int64_t>(little_endian(*list, k + 4, 8));
    s.zeros = static_cast<int64_t>(little_endian(*list, k + 12, 8));
    const uint64_t bits = little_endian(*list, k + 20, 8);
    std::memcpy(&s.log2_magnitude_sum, &bits, sizeof bits);
    if (s.count < 0 || s.zeros < 0 || s.zeros > s.count || !(s.log2_magnitude_sum >= 0.0))
      here.fail("weight summary of buffer " + std::to_string(b) + " is not a valid summary");
  }
}

Model parse(const uint8_t* data, size_t size, const std::string& source) {
  const Where model_level{source};
  if (size == 0) model_level.fail("empty file");
  if (size < 8) model_level.fail("too short to be a TFLite model (" + std::to_string(size) + " bytes)");
  if (!fb::ModelBufferHasIdentifier(data))
    model_level.fail("not a TFLite model (no 'TFL3' file identifier at byte 4)");
  // Models over 2 GiB keep their buffers after the flatbuffer; the flatbuffer part is what we verify.
  const size_t verify_size =
      std::min<size_t>(size, static_cast<size_t>(FLATBUFFERS_MAX_BUFFER_SIZE) - 1);
  flatbuffers::Verifier verifier(data, verify_size, 64, kMaxTables);
  if (!fb::VerifyModelBuffer(verifier))
    model_level.fail("flatbuffer verification failed (truncated or corrupted file)");

  const fb::Model* src = fb::GetModel(data);
  Model model;
  model.source = source;
  model.file_bytes = size;
  model.version = src->version();
  model.description = text_of(src->description());

  Buffers all_buffers;
  std::vector<uint64_t>& buffer_bytes = all_buffers.bytes;
  if (const auto* buffers = src->buffers()) {
    buffer_bytes.reserve(buffers->size());
    all_buffers.data.reserve(buffers->size());
    for (flatbuffers::uoffset_t b = 0; b < buffers->size(); ++b) {
      const fb::Buffer* buffer = buffers->Get(b);
      uint64_t bytes = buffer->data() ? buffer->data()->size() : 0;
      if (buffer->offset() > 1) {  // data stored after the flatbuffer, at an absolute file offset
        if (buffer->offset() > size || buffer->size() > size - buffer->offset())
          model_level.at(Where::Kind::kBuffer, b).fail(
                   "external data [" + std::to_string(buffer->offset()) + ", +" +
                       std::to_string(buffer->size()) + ") lies outside the " +
                       std::to_string(size) + "-byte file");
        bytes = buffer->size();
      }
      buffer_bytes.push_back(bytes);
      all_buffers.data.push_back(bytes == 0 ? nullptr : buffer->offset() > 1 ? data + buffer->offset() : buffer->data()->data());
    }
  }
  model.num_buffers = buffer_bytes.size();

  // Buffers emptied by strip_weights still mark their tensors constant.
  std::vector<char>& stripped = all_buffers.stripped;
  stripped.assign(buffer_bytes.size(), 0);
  if (const auto* metadata = src->metadata()) {
    for (const fb::Metadata* entry : *metadata) {
      if (entry->name() && entry->name()->str() == kWeightSummariesMetadata) {
        read_summaries(*src, *entry, model_level.at(Where::Kind::kBuffer, entry->buffer()), all_buffers);
        continue;
      }
      if (!entry->name() || entry->name()->str() != kStrippedBuffersMetadata) continue;
      const Where here = model_level.at(Where::Kind::kBuffer, entry->buffer());
      if (entry->buffer() >= buffer_bytes.size()) here.fail("metadata " + quoted(entry->name()) + " points past the buffers");
      // A model with no constant tensors strips nothing: its list is empty, which the
      // flatbuffer builder writes as an absent vector.
      const auto* list = src->buffers()->Get(entry->buffer())->data();
      const flatbuffers::uoffset_t list_bytes = list ? list->size() : 0;
      if (list_bytes % 4 != 0) here.fail("stripped-buffer list is not a list of uint32");
      for (flatbuffers::uoffset_t k = 0; k < list_bytes; k += 4) {
        const uint32_t b = list->Get(k) | (list->Get(k + 1) << 8) | (list->Get(k + 2) << 16) |
                           (static_cast<uint32_t>(list->Get(k + 3)) << 24);
        if (b >= stripped.size()) here.fail("stripped-buffer list names buffer " + std::to_string(b) + " of " + std::to_string(stripped.size()));
        stripped[b] = 1;
      }
    }
  }

  const auto* subgraphs = src->subgraphs();
  if (!subgraphs || subgraphs->size() == 0) model_level.fail("model has no subgraphs");
  const auto* codes = src->operator_codes();
  const size_t num_codes = codes ? codes->size() : 0;
  const int32_t max_code = op_vocabulary_size() - 1;

  model.subgraphs.resize(subgraphs->size());
  for (flatbuffers::uoffset_t s = 0; s < subgraphs->size(); ++s) {
    const fb::SubGraph* sg = subgraphs->Get(s);
    Subgraph& out = model.subgraphs[s];
    Where where = model_level.at(Where::Kind::kSubgraph, 0);
    where.subgraph = s;
    out.name = text_of(sg->name());

    const auto* tensors = sg->tensors();
    const size_t num_tensors = tensors ? tensors->size() : 0;
    out.tensors.resize(num_tensors);
    for (size_t t = 0; t < num_tensors; ++t)
      read_tensor(*tensors->Get(static_cast<flatbuffers::uoffset_t>(t)), all_buffers,
                  where.at(Where::Kind::kTensor, t), out.tensors[t]);

    out.inputs = copy_ints(sg->inputs());
    out.outputs = copy_ints(sg->outputs());
    check_tensor_list(out.inputs, num_tensors, false, where, "input");
    check_tensor_list(out.outputs, num_tensors, false, where, "output");

    const auto* ops = sg->operators();
    const size_t num_ops = ops ? ops->size() : 0;
    out.operators.resize(num_ops);
    for (size_t i = 0; i < num_ops; ++i) {
      const fb::Operator* op = ops->Get(static_cast<flatbuffers::uoffset_t>(i));
      Operator& o = out.operators[i];
      Where here = where.at(Where::Kind::kOperator, i);
      o.opcode_index = static_cast<int32_t>(op->opcode_index());
      if (op->opcode_index() >= num_codes)
        here.fail("opcode index " + std::to_string(op->opcode_index()) +
                           " is past the operator code table (" + std::to_string(num_codes) +
                           " entries)");
      const fb::OperatorCode* code = codes->Get(op->opcode_index());
      const int32_t builtin = std::max<int32_t>(static_cast<int32_t>(code->builtin_code()),
                                                static_cast<int32_t>(code->deprecated_builtin_code()));
      if (builtin < 0 || builtin > max_code)
        here.fail("unknown builtin operator code " + std::to_string(builtin) +
                           " (this perfsage knows codes 0.." + std::to_string(max_code) +
                           "; the model may need a newer perfsage)");
      o.builtin_code = builtin;
      o.version = code->version();
      if (builtin == kCustomOpCode) o.custom_code = text_of(code->custom_code());
      here.op = &o;

      o.inputs = copy_ints<decltype(o.inputs)>(op->inputs());
      o.outputs = copy_ints<decltype(o.outputs)>(op->outputs());
      o.intermediates = copy_ints(op->intermediates());
      check_tensor_list(o.inputs, num_tensors, true, here, "input");
      check_tensor_list(o.outputs, num_tensors, false, here, "output");
      check_tensor_list(o.intermediates, num_tensors, false, here, "intermediate");
      o.options_type = static_cast<int32_t>(op->builtin_options_type());
      read_options(*op, o.options);
      for (int32_t called : o.options.called_subgraphs)
        if (called < 0 || static_cast<flatbuffers::uoffset_t>(called) >= subgraphs->size())
          here.fail("calls subgraph " + std::to_string(called) + " but the model has " +
                             std::to_string(subgraphs->size()) + " subgraphs");
    }
  }
  return model;
}

}  // namespace

Model read_model(const uint8_t* data, size_t size, const std::string& source) {
  if (data == nullptr && size > 0) fail(source, "null data pointer");
  // flatbuffers reads scalars in place, which needs the buffer start aligned like the file's
  // largest scalar; bytes handed over from elsewhere (a slice of a larger buffer) may not be.
  if (reinterpret_cast<uintptr_t>(data) % alignof(std::max_align_t) != 0) {
    std::vector<uint8_t> aligned(data, data + size);
    return parse(aligned.data(), aligned.size(), source);
  }
  return parse(data, size, source);
}

Model read_model_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, "is a directory, not a .tflite file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  const std::streamoff size = in.tellg();
  if (size < 0) fail(path, "cannot determine the file size");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    fail(path, "read failed after " + std::to_string(in.gcount()) + " bytes");
  return read_model(bytes.data(), bytes.size(), path);
}

}  // namespace perfsage
