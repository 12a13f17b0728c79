#include "io/safetensors.hpp"

#include <ATen/Functions.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/error.hpp"
#include "io/mapped_file.hpp"
#include "io/text_file.hpp"

namespace universae::io::safetensors {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; this reader assumes a little-endian host");

// The largest header we accept: the Python library refuses more than 100 MB too.
constexpr uint64_t kMaxHeader = 100'000'000;

int64_t item_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

at::ScalarType scalar_type(DType d) {
  switch (d) {
    case DType::kF32: return at::kFloat;
    case DType::kF16: return at::kHalf;
    case DType::kBF16: return at::kBFloat16;
    case DType::kF64: return at::kDouble;
    case DType::kOther: break;
  }
  throw InternalError("safetensors: no scalar type for this dtype");
}

}  // namespace

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF64: return "F64";
    case DType::kOther: break;
  }
  return "other";
}

DType parse_dtype(const std::string& name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  if (name == "F64") return DType::kF64;
  return DType::kOther;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

namespace {

// The 8-byte length and the JSON text of the header, checked against the file's size. `data_start`,
// `data_size`: where the tensor bytes are.
std::string read_header_text(const std::string& path, uint64_t& data_start, uint64_t& data_size) {
  auto fail = [&](const std::string& what) { throw UsageError(path + ": " + what); };
  std::error_code ec;
  const uintmax_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail("cannot read (" + ec.message() + ")");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open for reading");
  if (file_size < 8) fail("not a safetensors file: " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > file_size - 8)
    fail("not a safetensors file: header length " + std::to_string(header_len) + " exceeds the file size " +
         std::to_string(file_size));
  if (header_len > kMaxHeader) fail("header length " + std::to_string(header_len) + " is over the 100 MB limit");
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  if (!in) fail("cannot read the header");
  data_start = 8 + header_len;
  data_size = file_size - data_start;
  return text;
}

// One tensor's header entry: a known dtype, a shape whose byte count fits 63 bits, and data_offsets
// inside the data section that span exactly that many bytes.
TensorInfo tensor_entry(const std::string& path, const std::string& name, const nlohmann::json& entry, uint64_t data_size) {
  auto bad = [&](const std::string& what) { throw UsageError(path + ": tensor '" + name + "': " + what); };
  if (!entry.is_object()) bad("entry is not an object");
  if (!entry.contains("dtype") || !entry["dtype"].is_string()) bad("no dtype");
  if (!entry.contains("shape") || !entry["shape"].is_array()) bad("no shape");
  if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
    bad("data_offsets is not [begin, end]");
  TensorInfo t;
  t.name = name;
  t.dtype_string = entry["dtype"].get<std::string>();
  t.dtype = parse_dtype(t.dtype_string);
  const int64_t size = item_size(t.dtype_string);
  if (size == 0) bad("unknown dtype '" + t.dtype_string + "'");
  // numel × item size, refusing anything that would overflow 63 bits.
  uint64_t bytes = static_cast<uint64_t>(size);
  for (const auto& dim : entry["shape"]) {
    if (!dim.is_number_unsigned()) bad("shape holds a value that is not a non-negative integer");
    const uint64_t v = dim.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (v != 0 && bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / v))
      bad("shape is too large");
    bytes *= v;
    t.shape.push_back(static_cast<int64_t>(v));
  }
  for (const auto& off : entry["data_offsets"])
    if (!off.is_number_unsigned()) bad("data_offsets are not non-negative integers");
  t.begin = entry["data_offsets"][0].get<uint64_t>();
  t.end = entry["data_offsets"][1].get<uint64_t>();
  if (t.begin > t.end) bad("data_offsets begin " + std::to_string(t.begin) + " > end " + std::to_string(t.end));
  if (t.end > data_size)
    bad("data_offsets end " + std::to_string(t.end) + " is past the end of the data (" + std::to_string(data_size) +
        " bytes): the file is truncated or the header is wrong");
  if (t.end - t.begin != bytes)
    bad("data_offsets span " + std::to_string(t.end - t.begin) + " bytes, but " + t.dtype_string + " " + shape_text(t.shape) +
        " needs " + std::to_string(bytes));
  return t;
}

}  // namespace

Reader::Reader(std::string path) : path_(std::move(path)) {
  auto fail = [&](const std::string& what) { throw UsageError(path_ + ": " + what); };
  uint64_t data_size = 0;
  const std::string text = read_header_text(path_, data_start_, data_size);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) fail("header is not a JSON object");
  for (const auto& [name, entry] : header.items()) {
    if (name != "__metadata__") {
      tensors_.push_back(tensor_entry(path_, name, entry, data_size));
      continue;
    }
    if (!entry.is_object()) fail("__metadata__ is not an object of strings");
    for (const auto& [key, value] : entry.items()) {
      if (!value.is_string()) fail("__metadata__." + key + " is not a string");
      metadata_[key] = value.get<std::string>();
    }
  }
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->begin < by_offset[i - 1]->end)
      fail("tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name + "' overlap in the data section");
}

const TensorInfo* Reader::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

at::Tensor Reader::read(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (t == nullptr) throw UsageError(path_ + ": no tensor '" + name + "'");
  return read_rows(name, 0, t->shape.empty() ? 1 : t->shape[0]);
}

at::Tensor Reader::map(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (t == nullptr) throw UsageError(path_ + ": no tensor '" + name + "'");
  if (t->dtype == DType::kOther)
    throw UsageError(path_ + ": tensor '" + name + "' has dtype " + t->dtype_string + " (supported: F32, F16, BF16, F64)");
  if (!mapping_) mapping_ = std::make_shared<const MappedFile>(path_, "a safetensors file");
  if (mapping_->size() < data_start_ + t->end) throw UsageError(path_ + ": shorter than when it was opened (changed since?)");
  at::Tensor view = mapped_view(mapping_, data_start_ + t->begin, t->shape, scalar_type(t->dtype));
  if (view.defined()) return view;
  // The data section is 8-byte aligned as the Python library writes it; a file that is not gets a copy.
  at::Tensor copy = at::empty(t->shape, scalar_type(t->dtype));
  std::memcpy(copy.data_ptr(), mapping_->data() + data_start_ + t->begin, t->end - t->begin);
  return copy;
}

at::Tensor Reader::read_rows(const std::string& name, int64_t begin, int64_t end) const {
  const TensorInfo* t = find(name);
  if (t == nullptr) throw UsageError(path_ + ": no tensor '" + name + "'");
  if (t->dtype == DType::kOther)
    throw UsageError(path_ + ": tensor '" + name + "' has dtype " + t->dtype_string + "; SAE weights must be F32, F16 or BF16");
  std::vector<int64_t> shape = t->shape;
  const int64_t rows = shape.empty() ? 1 : shape[0];
  if (begin < 0 || end > rows || begin > end)
    throw InternalError(path_ + ": rows [" + std::to_string(begin) + ", " + std::to_string(end) + ") of '" + name +
                        "' out of range");
  const int64_t row_bytes = rows == 0 ? 0 : static_cast<int64_t>(t->end - t->begin) / rows;
  if (!shape.empty()) shape[0] = end - begin;
  at::Tensor raw = at::empty(shape, scalar_type(t->dtype));
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(data_start_ + t->begin + static_cast<uint64_t>(begin * row_bytes)));
  in.read(static_cast<char*>(raw.data_ptr()), static_cast<std::streamsize>((end - begin) * row_bytes));
  if (!in) throw UsageError(path_ + ": cannot read tensor '" + name + "' (file changed or unreadable)");
  return raw.to(at::kFloat);
}

void write(const std::string& path, std::vector<Tensor> tensors, const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(), [](const Tensor& a, const Tensor& b) { return a.name < b.name; });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const at::Tensor c = t.values.to(scalar_type(t.dtype)).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned, as the Python library writes it
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw UsageError(path + ": cannot open for writing");
  uint64_t len = text.size();
  unsigned char len_bytes[8];
  for (unsigned char& b : len_bytes) b = static_cast<unsigned char>(len & 0xff), len >>= 8;
  out.write(reinterpret_cast<const char*>(len_bytes), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& c : data) out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
  out.close();
  if (!out) throw UsageError(path + ": write failed (disk full?)");
}

}  // namespace universae::io::safetensors
