#include "train/checkpoint.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/output.hpp"
#include "train/metrics.hpp"

namespace universae::train {
namespace {

constexpr const char* kFormat = "universae-checkpoint";

std::string seed_group(int64_t seed) { return "/seed" + std::to_string(seed); }

// Every (dataset suffix, tensor) of one seed's state, in a fixed order; `s` indexes this rank's stack.
struct Item {
  std::string name;
  at::Tensor tensor;  // the seed's slice (rows = latents, or b_dec)
  bool replicated;    // b_dec: one copy, written by shard 0
};

std::vector<Item> items(const EnsembleState& st, int64_t s) {
  std::vector<Item> out;
  const auto names = st.params.names();
  const auto p = st.params.tensors(), m = st.adam.m.tensors(), v = st.adam.v.tensors();
  for (size_t i = 0; i < p.size(); ++i) {
    const bool rep = names[i] == "b_dec";
    out.push_back({names[i], (*p[i])[s], rep});
    out.push_back({"adam_m/" + names[i], (*m[i])[s], rep});
    out.push_back({"adam_v/" + names[i], (*v[i])[s], rep});
  }
  return out;
}

}  // namespace

void write_checkpoint(const parallel::Comm& world, const Layout& layout, const std::string& path,
                      const std::string& fingerprint, const std::vector<int64_t>& all_seeds, int64_t n_latents,
                      int64_t d, const EnsembleState& st) {
  io::Pending pending(world, path);
  {
    io::File f = io::File::create(world, pending.partial());
    const auto rows_cols = static_cast<int64_t>(MetricsRow::columns().size());
    const auto history_rows = static_cast<int64_t>(st.history.empty() ? 0 : st.history[0].size()) / rows_cols;
    const std::vector<Item> shape_items = items(st, 0);  // same names on every rank
    for (size_t g = 0; g < all_seeds.size(); ++g) {
      const auto s = static_cast<int64_t>(g) - layout.seeds.begin;
      const bool mine = s >= 0 && s < layout.seeds.size() && layout.writes_rows();
      const std::string root = seed_group(all_seeds[g]);
      f.create_group(root + "/adam_m");
      f.create_group(root + "/adam_v");
      const std::vector<Item> own = mine ? items(st, s) : std::vector<Item>{};  // same order as shape_items
      for (size_t i = 0; i < shape_items.size(); ++i) {
        const Item& item = shape_items[i];
        const std::string name = root + "/" + item.name;
        std::vector<int64_t> shape = item.replicated ? std::vector<int64_t>{d} : std::vector<int64_t>{n_latents};
        if (item.tensor.dim() == 2) shape.push_back(d);
        f.create_dataset(name, io::DType::kFloat32, shape);
        core::Range rows{0, 0};
        const float* data = nullptr;
        at::Tensor t;
        if (mine) {
          t = own[i].tensor.contiguous();
          rows = item.replicated ? (layout.shard == 0 ? core::Range{0, d} : core::Range{0, 0}) : layout.latents;
          data = t.data_ptr<float>();
        }
        f.write_rows(name, rows, data);
      }
      f.create_dataset(root + "/since_fired", io::DType::kInt64, {n_latents});
      f.write_rows(root + "/since_fired", mine ? layout.latents : core::Range{0, 0},
                   mine ? st.since_fired.data() + s * layout.latents.size() : nullptr);
      f.create_dataset(root + "/history", io::DType::kFloat64, {history_rows, rows_cols});
      f.write_rows(root + "/history", mine && layout.shard == 0 ? core::Range{0, history_rows} : core::Range{0, 0},
                   mine ? st.history[static_cast<size_t>(s)].data() : nullptr);
    }
    // Per-seed scalars travel through world so that every rank writes the same attribute values.
    std::vector<double> thresholds(all_seeds.size(), std::numeric_limits<double>::infinity());
    if (layout.group_root())
      for (int64_t s = 0; s < layout.seeds.size(); ++s) {
        const double th = st.threshold[static_cast<size_t>(s)];
        thresholds[static_cast<size_t>(layout.seeds.begin + s)] = std::isnan(th) ? -1.0 : th;  // -1: unset
      }
    world.allreduce_min(thresholds.data(), static_cast<int64_t>(thresholds.size()));
    for (size_t g = 0; g < all_seeds.size(); ++g)
      f.write_attr(seed_group(all_seeds[g]), "batchtopk_threshold", thresholds[g]);
    f.write_attr("/", "format", kFormat);
    f.write_attr("/", "step", st.step);
    f.write_attr("/", "adam_step", st.adam.step);
    f.write_attr("/", "input_scale", st.input_scale);
    f.write_attr("/", "fingerprint", fingerprint);
    f.write_attr("/", "complete", true);
  }
  pending.commit();
}

void read_checkpoint(const parallel::Comm& world, const Layout& layout, const std::string& path,
                     const std::string& fingerprint, const std::vector<int64_t>& all_seeds, EnsembleState& st) {
  io::File f = io::File::open_read(world, path);
  const bool ok = f.has_attr("/", "format") && f.read_attr_string("/", "format") == kFormat &&
                  f.has_attr("/", "complete") && f.read_attr_bool("/", "complete");
  if (!ok) throw UsageError(path + " is not a complete universae checkpoint; remove it or rerun with --fresh");
  if (f.read_attr_string("/", "fingerprint") != fingerprint)
    throw UsageError(path + " was written for a different data/sae/train configuration; rerun with --fresh to "
                     "start over, or choose another run.output_dir");
  st.step = f.read_attr_int("/", "step");
  st.adam.step = f.read_attr_int("/", "adam_step");
  st.input_scale = f.read_attr_double("/", "input_scale");
  const auto rows_cols = static_cast<int64_t>(MetricsRow::columns().size());
  for (size_t g = 0; g < all_seeds.size(); ++g) {
    const auto s = static_cast<int64_t>(g) - layout.seeds.begin;
    const bool mine = s >= 0 && s < layout.seeds.size();
    const std::string root = seed_group(all_seeds[g]);
    // Reads are collective too: ranks of other groups take part with no rows. The items are views
    // into this rank's state, so copying into them fills it.
    const std::vector<Item> shape_items = items(st, 0);
    const std::vector<Item> own = mine ? items(st, s) : std::vector<Item>{};  // same order
    for (size_t i = 0; i < shape_items.size(); ++i) {
      const Item& item = shape_items[i];
      const std::string name = root + "/" + item.name;
      core::Range rows{0, 0};
      at::Tensor target;
      if (mine) {
        target = own[i].tensor;
        rows = item.replicated ? core::Range{0, target.size(0)} : layout.latents;
      }
      at::Tensor buffer = mine ? at::empty_like(target).contiguous() : at::empty({0});
      f.read_rows(name, rows, buffer.data_ptr<float>());
      if (mine) target.copy_(buffer);
    }
    f.read_rows(root + "/since_fired", mine ? layout.latents : core::Range{0, 0},
                mine ? st.since_fired.data() + s * layout.latents.size() : nullptr);
    const int64_t history_rows = f.shape(root + "/history")[0];
    std::vector<double> history(static_cast<size_t>(history_rows * rows_cols));
    f.read_rows(root + "/history", mine ? core::Range{0, history_rows} : core::Range{0, 0}, history.data());
    if (mine) {
      st.history[static_cast<size_t>(s)] = history;
      const double th = f.read_attr_double(root, "batchtopk_threshold");
      st.threshold[static_cast<size_t>(s)] = th < 0 ? std::nan("") : th;
    }
  }
}

}  // namespace universae::train
