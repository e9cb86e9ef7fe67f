// Which launches make a step: the configuration of a program for one set of
// enabled instructions, feeds and probes (step_segments.h), built once and
// kept with its graphs (device_program.h, Program::config_for).
//
// In program order, element-wise instructions merge into batches (one launch
// each, host_batch.h) as long as their terms allow, passing on constants a
// batch set this step; a mat-vec and the update that reads it fuse into one
// kernel where both were loaded so (DInstr::after_dot); every other
// instruction is a launch group of its own; feeds run where their data
// enters, probes after the last instruction; callbacks end a segment.
#pragma once
#include <algorithm>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "device_instr.h"
#include "step_segments.h"

namespace nc {
namespace NC_DEV_NS {

template <typename T>
class ConfigBuilder {
  public:
    ConfigBuilder(Program<T>& prog, Config& cfg) : prog_(prog), cfg_(cfg), exec_(&prog.exec()) {}

    void build(const std::vector<Feed<T>>& feeds, const std::vector<ProbeRecord<T>>& probes) {
        Config& cfg = cfg_;
        cfg.segments.emplace_back();
        HostBatch<T> pending;
        std::vector<int64_t> pending_instrs;  // merged into `pending` (some maybe empty)
        // addresses holding a constant that a batch set this step, not written since
        std::unordered_map<int64_t, T> known;
        auto written = [&known](const std::vector<int64_t>& addrs) {
            for (int64_t a : addrs) known.erase(a);
        };
        auto wrote = [&](const DInstr<T>& in) {
            std::vector<int64_t> w;
            if (in.writes(w))
                written(w);
            else
                known.clear();
        };

        auto flush = [&]() {
            if (pending.empty()) {
                cfg.idle.insert(cfg.idle.end(), pending_instrs.begin(), pending_instrs.end());
                pending_instrs.clear();
                return;
            }
            add_batch(pending, false, std::move(pending_instrs));
            pending_instrs.clear();
            pending = HostBatch<T>();
        };
        auto feeds_after = [&](int64_t after) {
            std::vector<size_t> which;
            for (size_t f = 0; f < feeds.size(); ++f)
                if (feeds[f].after == after && !feeds[f].addrs.empty()) which.push_back(f);
            if (which.empty()) return;
            flush();
            add_feed(feeds, which);
            for (size_t f : which) written(feeds[f].addrs);
        };

        Exec* ex = exec_;
        const RunCtrl<T>* c = prog_.ctrl();
        const int64_t n = prog_.size();
        feeds_after(-1);
        for (int64_t i = 0; i < n; ++i) {
            DInstr<T>& in = prog_.instr(i);
            if (prog_.enabled(i)) {
                if (in.is_callback) {
                    flush();
                    known.clear();
                    cfg.segments.back().callback = i;
                    cfg.segments.emplace_back();
                    cfg.has_callbacks = true;
                } else if (in.simple && in.two_phase) {
                    flush();
                    add_batch(in.batch, true, {i});
                    written(in.batch.w);
                } else if (in.simple) {
                    HostBatch<T> b = in.batch;
                    pending.start_from_known(b, known);
                    if (!b.empty() && !pending.can_merge(b)) {
                        HostBatch<T> forwarded = b;
                        if (pending.forward(forwarded) && pending.can_merge(forwarded)) {
                            b = std::move(forwarded);
                        } else {
                            flush();
                            b = in.batch;  // (known constants: now from a flushed batch)
                            pending.start_from_known(b, known);
                        }
                    }
                    pending_instrs.push_back(i);
                    if (!b.empty()) pending.merge(b);
                    b.record_known(known);
                } else if (i + 1 < n && prog_.fused(i + 1) && prog_.enabled(i + 1) &&
                           !has_feed_after(feeds, i) &&
                           !(prog_.as_phases(in.phase_parts(c)) &&
                             prog_.as_phases(prog_.instr(i + 1).phase_parts(c)))) {
                    // a mat-vec and the update that reads it: one kernel, then
                    // what the update has left (may join the next phases)
                    flush();
                    const typename DInstr<T>::Fused& f = prog_.fused(i + 1);
                    auto step = [ex, c](typename DInstr<T>::Launch l) {
                        return [ex, l, c](int64_t j) { l(*ex, StepRef<T>{c, j}); };
                    };
                    add_group(step(f.launch), {{i, i + 1}, "", 1});
                    if (f.rest) add_group(step(f.rest), {{i + 1}, "", 1}, f.rest_parts);
                    wrote(in);
                    wrote(prog_.instr(i + 1));
                    ++i;  // (no feed after the mat-vec; feeds after the update follow)
                } else {
                    flush();
                    DInstr<T>* ip = &in;
                    add_group([ex, ip, c](int64_t j) { ip->launch(*ex, StepRef<T>{c, j}); },
                              {{i}, "", ip->launches()}, ip->phase_parts(c));
                    wrote(in);
                }
            }
            feeds_after(i);
        }
        flush();
        add_probes(probes);
        cfg.launches_per_step += 1;  // Advance (once per graph; counted per step)
        // (graph size from the launches before phases share them: a bound)
        int64_t spg = kGraphLaunches / std::max<int64_t>(1, cfg.launches_per_step);
        cfg.steps_per_graph = std::max<int64_t>(1, std::min(spg, kMaxStepsPerGraph));
        if (cfg.has_callbacks) cfg.steps_per_graph = 1;
        cfg.launches_alone = cfg.launches_per_step;
        cfg.launches_per_step = count_launches();
        cfg.launches_per_graph =
            cfg.has_callbacks
                ? cfg.launches_per_step
                : prog_.issue_steps(cfg.segments.front(), cfg.steps_per_graph, true, true);
    }

  private:
    Program<T>& prog_;
    Config& cfg_;
    Exec* exec_;  // (the launches hold it, not the builder)

    static bool has_feed_after(const std::vector<Feed<T>>& feeds, int64_t i) {
        for (const auto& f : feeds)
            if (f.after == i && !f.addrs.empty()) return true;
        return false;
    }

    // Launches of one step as issued in a graph of one step (phases shared).
    int64_t count_launches() {
        int64_t n = 0;
        for (size_t k = 0; k < cfg_.segments.size(); ++k)
            n += prog_.issue_steps(cfg_.segments[k], 1, k + 1 == cfg_.segments.size(), true);
        return n;
    }

    // Device tables of this configuration, freed with it (Program::release).
    template <typename X>
    const X* upload(const std::vector<X>& v) {
        const X* p = prog_.upload(v);
        cfg_.buffers.push_back(reinterpret_cast<uint64_t>(p));
        return p;
    }
    Addr addr(const std::vector<int64_t>& v) {
        Addr a = prog_.addr(v);
        if (a.p) cfg_.buffers.push_back(reinterpret_cast<uint64_t>(a.p));
        return a;
    }

    // Adds a launch group to the configuration's last segment.
    // `parts`: the group as phases; used when every part has at most
    // NC_PHASE_MAX elements (parts without elements are left out).
    void add_group(std::function<void(int64_t)> launch, GroupInfo info,
                   const std::vector<PhasePart>& parts = {}) {
        std::vector<PhaseDesc> descs;
        const bool small = prog_.as_phases(parts);
        for (const PhasePart& p : parts) {
            if (!small || p.n <= 0) continue;
            PhaseDesc d;
            d.kind = p.kind;
            d.n = p.n;
            d.fn = upload(p.fn);
            descs.push_back(d);
        }
        cfg_.launches_per_step += info.launches;
        cfg_.segments.back().launches.push_back(std::move(launch));
        cfg_.segments.back().groups.push_back(std::move(info));
        cfg_.segments.back().phases.push_back(std::move(descs));
    }

    void add_batch(const HostBatch<T>& hb, bool two_phase, std::vector<int64_t> instrs) {
        BatchArrays<T> b;
        b.n = hb.size();
        b.n_terms = static_cast<int64_t>(hb.kind.size());
        b.w = upload(hb.w);
        b.mode = upload(hb.mode);
        b.term0 = upload(hb.term0);
        b.kind = upload(hb.kind);
        b.ta = upload(hb.ta);
        b.tb = upload(hb.tb);
        b.value = upload(hb.value);
        const int64_t nt = prog_.n_trials();
        T* scratch = nullptr;
        if (two_phase) {
            scratch = prog_.template scratch<T>(static_cast<size_t>(b.n_terms) * nt);
            cfg_.buffers.push_back(reinterpret_cast<uint64_t>(scratch));
        }
        const DPools<T> p = prog_.pools();
        const BatchGather<T> gather{p, b, scratch};
        const BatchApply<T> apply{p, b, scratch, prog_.dt()};
        std::vector<PhasePart> parts;
        if (scratch) parts.push_back(phase_part(gather, b.n_terms * nt));
        parts.push_back(phase_part(apply, b.n * nt));
        Exec* ex = exec_;
        add_group(
            [ex, gather, apply, nt](int64_t) {
                if (gather.scratch) ex->for_each(gather.b.n_terms * nt, gather);
                ex->for_each(apply.b.n * nt, apply);
            },
            {std::move(instrs), "", two_phase ? 2 : 1}, parts);
        cfg_.batches += 1;
    }

    // Elements of several feeds or probes ("owners") flattened for one launch.
    struct Elements {
        std::vector<int64_t> addrs, owner, k, sizes;  // sizes: per owner, all owners
        void add(int64_t who, const std::vector<int64_t>& a) {
            for (size_t e = 0; e < a.size(); ++e) {
                addrs.push_back(a[e]);
                owner.push_back(who);
                k.push_back(static_cast<int64_t>(e));
            }
        }
    };
    struct ElementTables {
        int64_t n = 0;
        Addr addr;
        const int64_t *owner = nullptr, *k = nullptr, *size = nullptr;
    };
    ElementTables upload_elements(const Elements& el) {
        ElementTables t;
        t.n = static_cast<int64_t>(el.addrs.size());
        t.addr = addr(el.addrs);
        t.owner = upload(el.owner);
        t.k = upload(el.k);
        t.size = upload(el.sizes);
        return t;
    }

    void add_feed(const std::vector<Feed<T>>& feeds, const std::vector<size_t>& which) {
        Elements el;
        for (const auto& f : feeds) el.sizes.push_back(static_cast<int64_t>(f.addrs.size()));
        for (size_t f : which) el.add(static_cast<int64_t>(f), feeds[f].addrs);
        const ElementTables t = upload_elements(el);
        FeedApply<T> fa;
        fa.p = prog_.pools();
        fa.n = t.n;
        fa.addr = t.addr;
        fa.fid = t.owner;
        fa.k = t.k;
        fa.size = t.size;
        push_stepped(fa, "feed");
    }

    void add_probes(const std::vector<ProbeRecord<T>>& probes) {
        Elements el;
        for (size_t q = 0; q < probes.size(); ++q) {
            el.sizes.push_back(static_cast<int64_t>(probes[q].addrs.size()));
            el.add(static_cast<int64_t>(q), probes[q].addrs);
        }
        if (el.addrs.empty()) return;
        const ElementTables t = upload_elements(el);
        ProbeGather<T> pg;
        pg.p = prog_.pools();
        pg.n = t.n;
        pg.n_probes = static_cast<int64_t>(probes.size());
        pg.addr = t.addr;
        pg.pid = t.owner;
        pg.k = t.k;
        pg.size = t.size;
        push_stepped(pg, "probe");
    }

    // A launch over (element, trial) that reads the run step (field `step`).
    template <typename K>
    void push_stepped(K kernel, const char* label) {
        const RunCtrl<T>* c = prog_.ctrl();
        const int64_t nt = prog_.n_trials();
        kernel.step = StepRef<T>{c, 0};
        const std::vector<PhasePart> parts{phase_part(kernel, kernel.n * nt)};
        Exec* ex = exec_;
        add_group(
            [ex, kernel, c, nt](int64_t j) mutable {
                kernel.step = StepRef<T>{c, j};
                ex->for_each(kernel.n * nt, kernel);
            },
            {{}, label, 1}, parts);
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
