#include <cstring>
#include <memory>

#include "perfsage/model.h"
#include "perfsage/tflite_generated.h"
#include "perfsage/writer.h"

namespace perfsage {
namespace {

namespace fb = ::perfsage::tflite;

void put_little_endian(std::vector<uint8_t>& out, uint64_t value, int bytes) {
  for (int k = 0; k < bytes; ++k) out.push_back(static_cast<uint8_t>(value >> (8 * k)));
}

// A metadata entry `name` holding `data` in a new buffer at the end.
void add_metadata(fb::ModelT& model, const char* name, std::unique_ptr<fb::BufferT> data) {
  auto metadata = std::make_unique<fb::MetadataT>();
  metadata->name = name;
  metadata->buffer = static_cast<uint32_t>(model.buffers.size());
  model.buffers.push_back(std::move(data));
  model.metadata.push_back(std::move(metadata));
}

}  // namespace

std::vector<uint8_t> strip_weights(const uint8_t* data, size_t size, const std::string& source) {
  const Model read = read_model(data, size, source);  // the full check: nothing below sees an invalid model
  std::unique_ptr<fb::ModelT> model(fb::GetModel(data)->UnPack());
  for (const auto& metadata : model->metadata)
    if (metadata && metadata->name == kStrippedBuffersMetadata) return {data, data + size};

  // Only tensor data goes; metadata buffers (runtime version, signatures, ...) stay.
  std::vector<char> tensor_buffer(model->buffers.size(), 0);
  for (const auto& subgraph : model->subgraphs)
    for (const auto& tensor : subgraph->tensors)
      if (tensor->buffer < tensor_buffer.size()) tensor_buffer[tensor->buffer] = 1;
  std::vector<uint32_t> stripped;
  for (size_t b = 0; b < model->buffers.size(); ++b) {
    auto& buffer = model->buffers[b];
    if (!tensor_buffer[b] || !buffer || (buffer->data.empty() && buffer->offset <= 1)) continue;
    stripped.push_back(static_cast<uint32_t>(b));
    buffer->data.clear();
    buffer->offset = 0;
    buffer->size = 0;
  }
  auto list = std::make_unique<fb::BufferT>();
  for (uint32_t b : stripped) put_little_endian(list->data, b, 4);
  add_metadata(*model, kStrippedBuffersMetadata, std::move(list));

  // The weight features read integer weights' values: their summaries stay, one per buffer.
  std::vector<char> summarised(model->buffers.size(), 0);
  auto summaries = std::make_unique<fb::BufferT>();
  for (const Subgraph& subgraph : read.subgraphs)
    for (const Tensor& tensor : subgraph.tensors) {
      if (tensor.values.count == 0 || summarised[tensor.buffer]) continue;
      summarised[tensor.buffer] = 1;
      uint64_t log2_bits = 0;
      std::memcpy(&log2_bits, &tensor.values.log2_magnitude_sum, sizeof log2_bits);
      put_little_endian(summaries->data, tensor.buffer, 4);
      put_little_endian(summaries->data, static_cast<uint64_t>(tensor.values.count), 8);
      put_little_endian(summaries->data, static_cast<uint64_t>(tensor.values.zeros), 8);
      put_little_endian(summaries->data, log2_bits, 8);
    }
  // Only models with integer weights get the entry, so that others strip as they always did.
  if (!summaries->data.empty()) add_metadata(*model, kWeightSummariesMetadata, std::move(summaries));

  flatbuffers::FlatBufferBuilder fbb(4096);
  fb::FinishModelBuffer(fbb, fb::Model::Pack(fbb, model.get()));
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

}  // namespace perfsage
