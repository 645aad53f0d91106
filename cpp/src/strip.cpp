#include <memory>

#include "perfsage/model.h"
#include "perfsage/tflite_generated.h"
#include "perfsage/writer.h"

namespace perfsage {

std::vector<uint8_t> strip_weights(const uint8_t* data, size_t size, const std::string& source) {
  namespace fb = ::perfsage::tflite;
  read_model(data, size, source);  // the full check: nothing below sees an invalid model
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
  for (uint32_t b : stripped)
    for (int shift = 0; shift < 32; shift += 8) list->data.push_back(static_cast<uint8_t>(b >> shift));
  auto metadata = std::make_unique<fb::MetadataT>();
  metadata->name = kStrippedBuffersMetadata;
  metadata->buffer = static_cast<uint32_t>(model->buffers.size());
  model->buffers.push_back(std::move(list));
  model->metadata.push_back(std::move(metadata));

  flatbuffers::FlatBufferBuilder fbb(4096);
  fb::FinishModelBuffer(fbb, fb::Model::Pack(fbb, model.get()));
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

}  // namespace perfsage
