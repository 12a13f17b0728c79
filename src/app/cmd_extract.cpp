// universae extract CONFIG.toml: LM activations → activation store.
// universae generate: greedy text from a llama2.c model (checks a model and tokenizer load right).
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>

#include "app/commands.hpp"
#include "app/summary.hpp"
#include "core/error.hpp"
#include "lm/generate.hpp"
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
      "extract", "Run a llama2.c model on text and write its activations at extract.hookpoints to an activation store "
                 "(extract.store, default <run.output_dir>/activations.h5); an interrupted run resumes");
  cmd->add_option("config", opts->config, "config file (TOML) with an [extract] section")->required();
  cmd->add_option("--set", opts->overrides, "override a config key: section.key=value (repeatable)");
  cmd->add_flag("--fresh", opts->fresh, "recompute even when a complete store with the same extract config exists");
  cmd->footer(config_keys_help());
  cmd->callback([opts, &action] {
    action = [opts](const parallel::Comm& comm) {
      const config::Config cfg = load_config(opts->config, opts->overrides);
      print_extracted(lm::run_extract_stage(comm, cfg, opts->fresh));
      return 0;
    };
  });
}

void add_generate(CLI::App& app, Action& action) {
  struct Options {
    std::string model, tokenizer, prompt;
    int64_t steps = 256;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Greedy text from a llama2.c model, byte for byte what llama2.c's `run MODEL -z TOKENIZER -t 0 -n STEPS` prints");
  cmd->add_option("--model", opts->model, "llama2.c checkpoint (.bin)")->required();
  cmd->add_option("--tokenizer", opts->tokenizer, "llama2.c tokenizer (.bin)")->required();
  cmd->add_option("--steps", opts->steps, "positions to run, prompt included (0: the model's seq_len)")->capture_default_str();
  cmd->add_option("--prompt", opts->prompt, "text to continue (default: none, start from BOS)");
  cmd->callback([opts, &action] {
    action = [opts](const parallel::Comm& comm) {
      std::string error;
      std::string text;
      try {
        const lm::LlamaModel model(opts->model);
        const lm::Tokenizer tokenizer(opts->tokenizer, model.config().vocab_size);
        if (comm.is_root()) text = lm::generate_greedy(model, tokenizer, opts->prompt, opts->steps);
      } catch (const UsageError& e) {
        error = e.what();
      }
      parallel::agree_on_error(comm, error);
      if (comm.is_root()) std::fwrite(text.data(), 1, text.size(), stdout);
      return 0;
    };
  });
}

}  // namespace universae::app
