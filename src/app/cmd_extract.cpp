// universae extract CONFIG.toml: LM activations → activation store.
// universae generate: greedy decoding (checks a model and tokenizer load right, against any reference).
// universae tokenize: the ids a tokenizer gives a text.
#include <CLI/CLI.hpp>

#include <filesystem>

#include <cmath>
#include <climits>
#include <cstdio>
#include <functional>

#include "app/commands.hpp"
#include "app/summary.hpp"
#include "core/error.hpp"
#include "io/text_file.hpp"
#include "lm/generate.hpp"
#include "lm/text_tokenizer.hpp"
#include "parallel/comm.hpp"

namespace universae::app {

void add_extract(CLI::App& app, Action& action) {
  struct Options {
    std::string config;
    std::vector<std::string> overrides;
    bool fresh = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "extract", "Run a language model on text and write its activations at extract.hookpoints to an activation store "
                 "(extract.store, default <run.output_dir>/activations.h5); an interrupted run resumes");
  cmd->add_option("config", opts->config, "config file (TOML) with an [extract] section")->required();
  cmd->add_option("--set", opts->overrides, "override a config key: section.key=value (repeatable)");
  cmd->add_flag("--fresh", opts->fresh, "recompute even when a complete store with the same extract config exists");
  cmd->footer(config_keys_help({"run", "extract"}, true));
  cmd->callback([opts, &action] {
    action = [opts](const parallel::Comm& comm) {
      const config::Config cfg = load_config(opts->config, opts->overrides);
      print_extracted(lm::run_extract_stage(comm, cfg, opts->fresh));
      save_resolved_config(comm, cfg, std::filesystem::path(cfg.extract.store).parent_path().string());
      return 0;
    };
  });
}

namespace {

// "1,2,3" or "1 2 3" → ids; anything else is a UsageError naming the option.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& option) {
  std::vector<int32_t> ids;
  std::string item;
  auto flush = [&] {
    if (item.empty()) return;
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) throw UsageError(option + ": '" + item + "' is not a token id");
    ids.push_back(static_cast<int32_t>(v));
    item.clear();
  };
  for (char ch : text) ch == ',' || ch == ' ' ? flush() : item.push_back(ch);
  flush();
  if (ids.empty()) throw UsageError(option + ": no token ids given");
  return ids;
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
  return out + "\n";
}

// Runs `work` on the root rank with every rank agreeing on a UsageError, then prints its text.
int root_prints(const parallel::Comm& comm, const std::function<std::string()>& work) {
  std::string error, text;
  try {
    if (comm.is_root()) text = work();
  } catch (const UsageError& e) {
    error = e.what();
  }
  parallel::agree_on_error(comm, error);
  if (comm.is_root()) std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace

void add_generate(CLI::App& app, Action& action) {
  struct Options {
    std::string model, tokenizer, prompt, prompt_ids, compute_dtype = "float32";
    int64_t steps = 256;
    bool print_ids = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Greedy decoding from any model extract reads; for a llama2.c model byte for byte what llama2.c's "
                  "`run MODEL -z TOKENIZER -t 0 -n STEPS` prints");
  cmd->add_option("--model", opts->model, "Hugging Face model directory, GGUF file or llama2.c checkpoint")->required();
  cmd->add_option("--tokenizer", opts->tokenizer, "tokenizer.json or llama2.c tokenizer.bin (not needed with --prompt-ids --print-ids)");
  cmd->add_option("--steps", opts->steps, "positions to run, prompt included (0: the model's context)")->capture_default_str();
  auto* prompt = cmd->add_option("--prompt", opts->prompt, "text to continue, after BOS (default: none, start from BOS)");
  cmd->add_option("--prompt-ids", opts->prompt_ids, "the prompt as token ids (1,2,3), used verbatim: no BOS added")->excludes(prompt);
  cmd->add_flag("--print-ids", opts->print_ids, "print the generated ids (prompt excluded) on one line instead of text");
  cmd->add_option("--compute-dtype", opts->compute_dtype, "float32 or bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}))->capture_default_str();
  cmd->callback([opts, &action] {
    action = [opts](const parallel::Comm& comm) {
      return root_prints(comm, [&] {
        const lm::LanguageModel model(opts->model, opts->compute_dtype == "bfloat16" ? lm::ComputeDtype::kBFloat16 : lm::ComputeDtype::kFloat32);
        std::unique_ptr<lm::TextTokenizer> tokenizer;
        if (!opts->tokenizer.empty()) tokenizer = lm::open_tokenizer(opts->tokenizer, &model.config());
        if (!tokenizer && !(opts->print_ids && !opts->prompt_ids.empty()))
          throw UsageError("generate: --tokenizer is needed to encode a text prompt or print text (or give --prompt-ids and --print-ids)");
        if (opts->prompt_ids.empty() && !opts->print_ids) return lm::generate_greedy(model, *tokenizer, opts->prompt, opts->steps);
        const std::vector<int32_t> prompt_ids =
            opts->prompt_ids.empty() ? tokenizer->encode(opts->prompt, /*bos=*/true, /*eos=*/false) : parse_ids(opts->prompt_ids, "--prompt-ids");
        const std::vector<int32_t> ids = lm::generate_ids(model, prompt_ids, opts->steps);
        return opts->print_ids ? join_ids(ids) : tokenizer->render(prompt_ids, ids) + "\n";
      });
    };
  });
}

void add_tokenize(CLI::App& app, Action& action) {
  struct Options {
    std::string tokenizer, text, file;
    bool special = false, pieces = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Print the token ids of a text as one space-separated line, as Hugging Face's encode(text, "
                  "add_special_tokens=False) gives them");
  cmd->add_option("--tokenizer", opts->tokenizer, "tokenizer.json (or a directory holding it) or llama2.c tokenizer.bin")->required();
  auto* text = cmd->add_option("text", opts->text, "the text (or --file)");
  cmd->add_option("--file", opts->file, "read the text from a file (its whole content, as one sequence)")->excludes(text);
  cmd->add_flag("--special", opts->special, "add the tokenizer's BOS and EOS");
  cmd->add_flag("--pieces", opts->pieces, "print the token strings instead of ids");
  cmd->callback([opts, &action] {
    action = [opts](const parallel::Comm& comm) {
      return root_prints(comm, [&] {
        const auto tokenizer = lm::open_tokenizer(opts->tokenizer, nullptr);
        const std::string input = opts->file.empty() ? opts->text : io::read_text(opts->file);
        const std::vector<int32_t> ids = tokenizer->encode(input, opts->special, opts->special);
        if (!opts->pieces) return join_ids(ids);
        std::string out;
        for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + tokenizer->pieces().at(static_cast<size_t>(ids[i]));
        return out + "\n";
      });
    };
  });
}

}  // namespace universae::app
