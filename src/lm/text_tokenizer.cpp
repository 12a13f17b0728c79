// Opening a tokenizer by what its file is, and tokenizer.json behind the TextTokenizer interface.
#include "lm/text_tokenizer.hpp"

#include <algorithm>
#include <filesystem>

#include "core/error.hpp"
#include "lm/hf_tokenizer.hpp"
#include "lm/model.hpp"
#include "lm/tokenizer.hpp"

namespace universae::lm {
namespace {

class HfTextTokenizer : public TextTokenizer {
 public:
  HfTextTokenizer(const std::string& path, const ModelConfig* model) : hf_(path) {
    bos_ = hf_.bos().value_or(model != nullptr ? model->bos : -1);
    eos_ = hf_.eos().value_or(model != nullptr ? model->eos : -1);
  }
  std::vector<int32_t> encode(const std::string& text, bool bos, bool eos) const override {
    std::vector<int32_t> ids;
    if (bos && bos_ >= 0) ids.push_back(bos_);
    const std::vector<int32_t> body = hf_.encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    if (eos && eos_ >= 0) ids.push_back(eos_);
    return ids;
  }
  // What the ids add to the decoded context (a decoder may treat a sequence's start differently).
  std::string render(const std::vector<int32_t>& context, const std::vector<int32_t>& ids) const override {
    std::vector<int32_t> all = context;
    all.insert(all.end(), ids.begin(), ids.end());
    const std::string before = hf_.decode(context), text = hf_.decode(all);
    return text.compare(0, before.size(), before) == 0 ? text.substr(before.size()) : hf_.decode(ids);
  }
  const std::vector<std::string>& pieces() const override { return hf_.pieces(); }
  int32_t bos() const override { return bos_; }
  int32_t eos() const override { return eos_; }
  std::vector<int32_t> special_ids() const override {
    std::vector<int32_t> ids = hf_.special_ids();
    for (int32_t id : {bos_, eos_})  // BOS/EOS named by config.json need not be marked special
      if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    return ids;
  }
  const std::string& path() const override { return hf_.path(); }

 private:
  HfTokenizer hf_;
  int32_t bos_ = -1, eos_ = -1;
};

}  // namespace

std::unique_ptr<TextTokenizer> open_tokenizer(const std::string& path, const ModelConfig* model) {
  namespace fs = std::filesystem;
  std::string file = path;
  if (fs::is_directory(path)) {
    file = (fs::path(path) / "tokenizer.json").string();
    if (!fs::exists(file)) throw UsageError(path + ": no tokenizer.json in this directory");
  }
  std::unique_ptr<TextTokenizer> t;
  if (fs::path(file).extension() == ".json")
    t = std::make_unique<HfTextTokenizer>(file, model);
  else
    t = std::make_unique<Tokenizer>(file, model != nullptr ? model->vocab_size : 0);
  if (model != nullptr && t->size() > model->vocab_size)
    throw UsageError(file + ": the tokenizer has " + std::to_string(t->size()) + " tokens, but the model's embedding has only " +
                     std::to_string(model->vocab_size) + " rows (is this the model's own tokenizer?)");
  return t;
}

}  // namespace universae::lm
