// A step of the device program as launch groups, and how they are issued.
//
// A configuration (one set of enabled instructions, feeds and probes) is a
// list of segments: the launch groups between two callbacks (all of the step
// where there are none).  step_config.h builds it; the program
// (device_program.h) captures each segment, or several steps of the only
// one, as a graph and replays it.  The Issuer issues a segment's groups while
// a graph is captured, letting consecutive small groups share one phases
// launch (phases.h).
#pragma once
#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "phases.h"

namespace nc {
namespace NC_DEV_NS {

// Graphs hold at most this many launches (so a step graph holds
// kGraphLaunches / launches-per-step steps, between 1 and kMaxStepsPerGraph).
constexpr int64_t kGraphLaunches = 1024;
constexpr int64_t kMaxStepsPerGraph = 64;

// What a launch group covers, for profiles (see ProfileGroup).
struct GroupInfo {
    std::vector<int64_t> instrs;
    std::string label;  // "feed", "probe"; empty: the kinds of `instrs`
    int64_t launches = 1;
};

struct Segment {
    std::vector<std::function<void(int64_t)>> launches;  // argument: step j in the graph
    std::vector<GroupInfo> groups;                       // one per element of `launches`
    // per element of `launches`: its phases when small enough to share a
    // launch with its neighbours (empty: launched alone); see Issuer
    std::vector<std::vector<PhaseDesc>> phases;
    int64_t callback = -1;                               // instruction after the segment
    std::shared_ptr<typename Exec::Graph> graph;         // one step
};

struct Config {
    std::vector<int64_t> key;
    std::vector<Segment> segments;
    bool has_callbacks = false;
    int64_t launches_per_step = 0, batches = 0, steps_per_graph = 1;
    int64_t launches_alone = 0;  // per step, every group launched alone (profiles)
    int64_t launches_per_graph = 0;  // in a graph of steps_per_graph steps
    std::shared_ptr<typename Exec::Graph> graph_many;  // steps_per_graph steps
    std::vector<uint64_t> buffers;                     // device tables of this config
    std::vector<int64_t> idle;                         // enabled, but launch nothing
};

// Issues launch groups while a graph is captured: consecutive groups that
// run as phases (Segment::phases) are held back and issued as one phases
// launch (phases.h) when a group that cannot follows, when the list is
// full, or when the graph ends.  A group held alone launches as it would
// without phases.  `dry`: counts the launches, issues nothing.
template <typename T>
class Issuer {
  public:
    // `ctrl`: the run's step counter; `phases`: whether small launches may
    // share a phases launch (NC_PHASE_MAX > 0).
    Issuer(Exec& exec, RunCtrl<T>* ctrl, bool phases, bool dry)
        : exec_(exec), ctrl_(ctrl), phases_(phases), dry_(dry) {}

    // Issues `n` steps of segment `seg` for one graph, then, with
    // `advance`, the step counter's advance by `n` (graphs of the only
    // segment, or of a step's last segment).  Returns the launches.
    int64_t steps(Segment& seg, int64_t n, bool advance) {
        for (int64_t j = 0; j < n; ++j)
            for (size_t k = 0; k < seg.launches.size(); ++k) group(seg, k, j);
        if (advance) advance_by(n);
        flush();
        return launches_;
    }

  private:
    Exec& exec_;
    RunCtrl<T>* ctrl_;
    bool phases_, dry_;
    PhaseList list_;
    int held_ = 0;                // groups in `list_`
    std::function<void()> lone_;  // the last held group's own launch
    int64_t lone_launches_ = 0;
    int64_t launches_ = 0;        // issued (or counted) so far

    void group(Segment& seg, size_t k, int64_t j) {
        item(seg.phases[k], j, seg.groups[k].launches, [&seg, k, j]() { seg.launches[k](j); });
    }
    // The step counter's advance, at the end of a graph.
    void advance_by(int64_t steps) {
        std::vector<PhaseDesc> ph;
        if (phases_) {
            PhaseDesc d;
            d.kind = kPhaseAdvance;
            d.n = 1;
            d.fn = ctrl_;
            ph.push_back(d);
        }
        Exec& ex = exec_;
        RunCtrl<T>* c = ctrl_;
        item(ph, steps, 1, [&ex, c, steps]() { ex.for_each(1, Advance<T>{c, steps}); });
    }
    void flush() {
        if (held_ == 0) return;
        if (!dry_) {
            if (held_ == 1)
                lone_();
            else
                exec_.template phases<T>(list_);
        }
        launches_ += held_ == 1 ? lone_launches_ : 1;
        list_.n = 0;
        held_ = 0;
    }
    // A group of phases `ph` (none: it launches alone) for step j, whose
    // own launch `own` issues `own_launches` kernels.
    void item(const std::vector<PhaseDesc>& ph, int64_t j, int64_t own_launches,
              std::function<void()> own) {
        if (ph.empty()) {
            flush();
            if (!dry_) own();
            launches_ += own_launches;
            return;
        }
        if (list_.n + static_cast<int>(ph.size()) > kMaxPhases) flush();
        for (PhaseDesc d : ph) {
            d.j = j;
            list_.d[list_.n++] = d;
        }
        held_ += 1;
        lone_ = std::move(own);
        lone_launches_ = own_launches;
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
