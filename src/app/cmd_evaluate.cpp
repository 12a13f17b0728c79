// universae evaluate: SAEs spliced into their model on documents (lm/sae_evaluation.hpp), a table
// on the console and SAELens-named figures in a JSON file.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "core/error.hpp"
#include "io/output.hpp"
#include "io/sae_file.hpp"
#include "lm/documents.hpp"
#include "lm/extract_stage.hpp"
#include "lm/sae_evaluation.hpp"
#include "lm/text_tokenizer.hpp"
#include "parallel/comm.hpp"
#include "parallel/log.hpp"

namespace universae::app {
namespace {

struct EvaluateOptions {
  std::vector<std::string> saes, inputs;
  std::string model, tokenizer, out, hookpoint, input_format = "auto", compute_dtype = "float32";
  int64_t max_documents = 0, max_tokens = 0, seq_len = 0, batch_tokens = 4096;
};

// Everything a run needs, opened and checked on every rank before any forward pass.
struct Evaluation {
  std::unique_ptr<lm::LanguageModel> model;
  std::vector<io::SaeWeights> saes;
  std::vector<lm::Hook> hooks;
  lm::ExtractPlan plan;
};

Evaluation open_evaluation(const parallel::Comm& comm, const EvaluateOptions& o) {
  Evaluation e;
  std::string error;
  std::vector<std::string> documents;
  std::unique_ptr<lm::TextTokenizer> tokenizer;
  int64_t seq_len = 0;
  try {
    const std::filesystem::path parent = std::filesystem::path(o.out).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent))
      throw UsageError("--out " + o.out + ": the directory " + parent.string() + " does not exist");
    if (o.batch_tokens < 1) throw UsageError("--batch-tokens: must be at least 1");
    e.model = std::make_unique<lm::LanguageModel>(o.model, o.compute_dtype == "bfloat16" ? lm::ComputeDtype::kBFloat16 : lm::ComputeDtype::kFloat32);
    const lm::ModelConfig& m = e.model->config();
    tokenizer = lm::open_tokenizer(o.tokenizer, &m);
    seq_len = o.seq_len > 0 ? o.seq_len : m.seq_len;
    if (seq_len < 2 || seq_len > m.seq_len)
      throw UsageError("--seq-len: " + std::to_string(o.seq_len) + " is outside 2.." + std::to_string(m.seq_len) + " (the model's context)");
    for (const std::string& path : o.saes) {
      e.saes.push_back(io::read_sae(comm, path));
      e.hooks.push_back(lm::splice_hook(m, e.saes.back().header, o.hookpoint));
    }
    documents = lm::read_documents(o.inputs, o.input_format);
    if (o.max_documents > 0 && static_cast<int64_t>(documents.size()) > o.max_documents) documents.resize(static_cast<size_t>(o.max_documents));
    if (documents.empty()) throw UsageError("--inputs: no documents in " + o.inputs.front() + (o.inputs.size() > 1 ? " ..." : ""));
  } catch (const UsageError& ex) {
    error = ex.what();
  }
  parallel::agree_on_error(comm, error);
  try {
    e.plan = lm::plan_documents(comm, *tokenizer, documents, seq_len, o.batch_tokens, o.max_tokens, "--max-tokens");
  } catch (const UsageError& ex) {
    error = ex.what();
  }
  parallel::agree_on_error(comm, error);
  return e;
}

nlohmann::json to_json(const lm::SaeScore& s) {
  return {{"ce_loss_score", s.ce_loss_score},
          {"ce_loss_with_sae", s.ce_loss_with_sae},
          {"ce_loss_without_sae", s.ce_loss_without_sae},
          {"ce_loss_with_ablation", s.ce_loss_with_ablation},
          {"kl_div_score", s.kl_div_score},
          {"kl_div_with_sae", s.kl_div_with_sae},
          {"kl_div_with_ablation", s.kl_div_with_ablation},
          {"explained_variance", s.explained_variance},
          {"fvu", s.fvu},
          {"l2_ratio", s.l2_ratio},
          {"relative_reconstruction_bias", s.relative_reconstruction_bias},
          {"l0", s.l0},
          {"n_tokens", s.n_tokens},
          {"n_predicted", s.n_predicted},
          {"hookpoint", s.hookpoint},
          {"n_latents", s.n_latents},
          {"d_in", s.d_in},
          {"seconds", {{"clean", s.clean_seconds}, {"spliced", s.splice_seconds}, {"ablated", s.ablation_seconds}}}};
}

void print_scores(const std::vector<lm::SaeScore>& scores) {
  if (scores.empty()) return;
  fmt::print("\n{} tokens ({} predicted); clean next-token loss {:.4f} nats\n", scores[0].n_tokens, scores[0].n_predicted,
             scores[0].ce_loss_without_sae);
  fmt::print("{:<24} {:>9} {:>9} {:>9} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8}   {}\n", "hookpoint", "CE score", "CE SAE", "CE zero",
             "KL SAE", "KL score", "EV", "FVU", "L2 ratio", "L0", "SAE");
  for (const auto& s : scores)
    fmt::print("{:<24} {:>9.4f} {:>9.4f} {:>9.4f} {:>10.6f} {:>9.4f} {:>8.4f} {:>8.4f} {:>8.4f} {:>8.2f}   {}\n", s.hookpoint,
               s.ce_loss_score, s.ce_loss_with_sae, s.ce_loss_with_ablation, s.kl_div_with_sae, s.kl_div_score, s.explained_variance,
               s.fvu, s.l2_ratio, s.l0, s.path);
  std::fflush(stdout);
}

}  // namespace

void add_evaluate(CLI::App& app, Action& action) {
  auto o = std::make_shared<EvaluateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "evaluate", "Score SAEs (universae, sparsify or SAELens) by splicing each into its model at its hookpoint: next-token loss "
                  "and KL with the reconstruction and with the activation zeroed (SAELens' ce_loss_score, kl_div_score), "
                  "explained variance, L2 ratio, L0");
  cmd->add_option("--sae", o->saes, "an SAE file or sparsify/SAELens directory (repeatable)")->required();
  cmd->add_option("--model", o->model, "Hugging Face model directory, GGUF file or llama2.c checkpoint")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json or llama2.c tokenizer.bin")->required();
  cmd->add_option("--inputs", o->inputs, "text files (documents as extract reads them: each from BOS)")->required();
  cmd->add_option("--out", o->out, "JSON file written with one object per SAE, keyed by its path")->required();
  cmd->add_option("--max-documents", o->max_documents, "use the first N documents (0: all)")->capture_default_str();
  cmd->add_option("--max-tokens", o->max_tokens, "use the first documents within N tokens (0: all)")->capture_default_str();
  cmd->add_option("--hookpoint", o->hookpoint, "splice every SAE here instead of the hookpoint its file records");
  cmd->add_option("--input-format", o->input_format, "auto, text, endoftext or jsonl (as extract.input_format)")
      ->check(CLI::IsMember({"auto", "text", "endoftext", "jsonl"}))
      ->capture_default_str();
  cmd->add_option("--seq-len", o->seq_len, "longest sequence; longer documents continue in windows from BOS (0: the model's context)")
      ->capture_default_str();
  cmd->add_option("--batch-tokens", o->batch_tokens, "tokens per forward batch (each batch on one rank)")->capture_default_str();
  cmd->add_option("--compute-dtype", o->compute_dtype, "float32 or bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}))->capture_default_str();
  cmd->footer(
      "Every position counts: the splice replaces the activation at every position (BOS included); CE is averaged over the "
      "positions with a next token, KL over every position. docs/evaluation.md defines each figure.\n\n" +
      exit_codes_help());
  cmd->callback([o, &action] {
    action = [o](const parallel::Comm& comm) {
      const Evaluation e = open_evaluation(comm, *o);
      log::info("evaluate: {} SAE(s) on {} tokens in {} sequences ({} batches of ≤ {} tokens)", e.saes.size(), e.plan.tokens.size(),
                e.plan.n_sequences(), e.plan.n_batches(), o->batch_tokens);
      const std::vector<lm::SaeScore> scores = lm::evaluate_saes(comm, *e.model, e.plan, e.saes, e.hooks);
      std::string error;
      if (comm.is_root()) {
        nlohmann::json out = nlohmann::json::object();
        for (const auto& s : scores) out[s.path] = to_json(s);
        if (!io::publish_text(o->out, out.dump(2) + "\n")) error = "--out " + o->out + ": could not be written";
      }
      parallel::agree_on_error(comm, error);
      if (comm.is_root()) print_scores(scores);
      log::info("evaluate: wrote {}", o->out);
      return 0;
    };
  });
}

}  // namespace universae::app
