// The device program: loads the planner's instructions into device tables and
// runs steps as captured graphs.  Shared by the GPU build (program_cuda.cu)
// and the host emulator (program_emulated.cpp); each defines, before including
// this header, NC_DEV_NS and a class Exec in nc::NC_DEV_NS:
//
//   class Exec {
//     struct Graph;                                   // a captured sequence
//     explicit Exec(int device);
//     void enter(uint64_t user_stream);               // our stream waits for the user's
//     void leave(uint64_t user_stream);               // the user's stream waits for ours
//     template <class F> void for_each(int64_t n, const F& f);   // f(i), 0 <= i < n
//     template <class T, int TT, class Epi = NoEpilogue>
//     void dot(const DotParams<T>&, int64_t n_tiles, const Epi& = Epi());
//     template <class T, int TPT, class Epi = NoEpilogue>
//     void dense_dot(const DotParams<T>&, int64_t n_tiles, const Epi& = Epi());
//     void h2d(uint64_t dst, const void* src, size_t bytes);
//     void d2h(void* dst, uint64_t src, size_t bytes);
//     void fill(uint64_t dst, int byte, size_t bytes);
//     void sync();                                    // waits for our stream
//     bool pin(void* host, size_t bytes);             // page-lock host memory (or false)
//     void unpin(void* host);
//     std::shared_ptr<Graph> capture(const std::function<void()>& body);
//     void launch(Graph&);
//     void reserve_marks(size_t n);                   // timing marks 0..n-1 (kept until close)
//     void mark(size_t k);                            // records mark k after the work so far
//     double seconds_between(size_t a, size_t b);     // after sync(): time from mark a to b
//     void close();
//   };
//
// Per run: the host pools are uploaded, the step graphs replayed n times (a
// graph holds several steps when the program has no callbacks), the state is
// downloaded and the probe buffers are copied into the host arrays.  Callback
// instructions split a step into segments; around each callback the pool
// ranges it uses are copied to the host and back.
//
// The parts, in the order a run uses them: device_instr.h (a loaded
// instruction; the loaders are device_instrs_*.h), step_config.h (which
// launches make a step, per configuration of feeds and probes),
// step_segments.h (those launches as segments, issued into graphs),
// run_buffers.h (probe outputs and feed data of a run), device_memory.h.
#pragma once
#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "device_api.h"
#include "device_instr.h"
#include "device_memory.h"
#include "knobs.h"
#include "run_buffers.h"
#include "step_config.h"
#include "step_segments.h"

namespace nc {
namespace NC_DEV_NS {

// Configurations (enabled instructions, feeds, probes) whose graphs are kept.
constexpr size_t kMaxConfigs = 4;
// Timing marks of a profiled run between two reads of them (so at most this
// many CUDA events): several steps are queued before the host waits.
constexpr int64_t kMaxMarks = 2048;

template <typename T>
class Program final : public DeviceProgram<T> {
  public:
    Program(const DeviceLayout<T>& lay, DeviceHooks hooks)
        : lay_(lay),
          exec_(lay.device),
          check_stop_(hooks.check_stop),
          mem_(ordered_allocations(std::move(hooks))) {
        if (lay.n_trials < 1) throw std::invalid_argument("n_trials must be >= 1");
        if (lay.f_shared < 0 || lay.f_state < 0 || lay.i_shared < 0 || lay.i_state < 0)
            throw std::invalid_argument("buffer sizes must be non-negative");
        if (!lay.host_f || !lay.host_i || !lay.dev_f || !lay.dev_i)
            throw std::invalid_argument("device program: null buffer");
        pools_.f = reinterpret_cast<T*>(lay.dev_f);
        pools_.f_shared = lay.f_shared;
        pools_.f_state = lay.f_state;
        pools_.i = reinterpret_cast<int64_t*>(lay.dev_i);
        pools_.i_shared = lay.i_shared;
        pools_.i_state = lay.i_state;
        pools_.n_trials = lay.n_trials;
        host_.f = {lay.host_f, lay.f_shared, lay.f_state};
        host_.i = {lay.host_i, lay.i_shared, lay.i_state};
        host_.n_trials = lay.n_trials;
        ctrl_ = mem_.alloc(sizeof(RunCtrl<T>));
        // Host pools page-locked: every run copies them both ways.  Copies from
        // and to them are then asynchronous; run() synchronizes before Python
        // sees them again.
        const int64_t nf = lay.f_shared + lay.n_trials * lay.f_state;
        const int64_t ni = lay.i_shared + lay.n_trials * lay.i_state;
        if (exec_.pin(lay.host_f, nf * sizeof(T))) pinned_.push_back(lay.host_f);
        if (exec_.pin(lay.host_i, ni * sizeof(int64_t))) pinned_.push_back(lay.host_i);
        phase_blocks_ = exec_.template phase_blocks<T>();  // (device queries: before any capture)
    }

    ~Program() override {
        try {
            configs_.clear();  // graphs first
            exec_.close();     // waits for the stream
            unpin();
        } catch (...) {
        }
    }

    // -- loading -------------------------------------------------------------
    int64_t add(const InstrSpec& spec) override {
        check_open();
        Ordered order(*this);
        // The CPU factory validates the spec (shapes, addresses) with the very
        // checks the CPU backend applies; its instruction is then dropped.
        auto& reg = instr_registry<T>();
        auto it = reg.find(spec.kind);
        if (it == reg.end())
            throw std::invalid_argument("unknown instruction kind '" + spec.kind + "'");
        it->second(spec, host_);
        auto instr = make(spec);
        instr->kind = spec.kind;
        typename DInstr<T>::Fused fused;
        if ((fuse_neurons_ || fuse_filters_) && !instrs_.empty())
            if (auto* dot = dynamic_cast<DotInstr<T>*>(instrs_.back().get()))
                fused = instr->after_dot(*this, *dot);
        instrs_.push_back(std::move(instr));
        fused_.push_back(std::move(fused));
        enabled_.push_back(true);
        invalidate();
        return size() - 1;
    }

    int64_t add_callback(std::function<void()> fn, std::vector<int64_t> f_ranges,
                         std::vector<int64_t> i_ranges) override {
        check_open();
        check_ranges(f_ranges, lay_.f_shared + lay_.n_trials * lay_.f_state, "float");
        check_ranges(i_ranges, lay_.i_shared + lay_.n_trials * lay_.i_state, "int");
        auto instr = std::make_unique<DInstr<T>>();
        instr->kind = "callback";
        instr->is_callback = true;
        instr->fn = std::move(fn);
        instr->f_ranges = std::move(f_ranges);
        instr->i_ranges = std::move(i_ranges);
        instrs_.push_back(std::move(instr));
        fused_.emplace_back();
        enabled_.push_back(true);
        invalidate();
        return size() - 1;
    }

    void set_enabled(int64_t i, bool on) override {
        instr_at(i);
        enabled_[i] = on;  // the configuration key includes it
    }

    void set_table(int64_t i, const std::string& name, std::vector<double> data) override {
        check_open();
        Ordered order(*this);
        instr_at(i).set_table(*this, name, std::move(data));
    }

    int64_t size() const override { return static_cast<int64_t>(instrs_.size()); }
    int64_t steps_done() const override { return steps_done_; }
    void set_poison(bool on) override { poison_ = on; }
    void set_stream(uint64_t user_stream) override { user_stream_ = user_stream; }

    std::map<std::string, int64_t> stats() const override {
        return {{"launches_per_step", last_launches_},
                {"launches_per_step_alone", last_launches_alone_},
                {"launches_per_graph", last_launches_graph_},
                {"steps_per_graph", last_steps_per_graph_},
                {"segments", last_segments_},
                {"batches", last_batches_},
                {"instructions", size()},
                {"pinned_pools", static_cast<int64_t>(pinned_.size())},
                {"device_buffers", static_cast<int64_t>(mem_.live())},
                {"programmatic_launch", exec_.pdl() ? 1 : 0},
                {"phase_blocks", phase_blocks_},
                {"dense_products", dense_products()},
                {"dense_stages", dense_stages()},
                {"dense_convolutions", dense_convolutions()},
                {"neuron_trials", neuron_trials()},
                {"deferred_neurons", deferred_neurons()}};
    }

    // The most trials one thread of a neuron update's launch updates (0: none).
    int64_t neuron_trials() const {
        int64_t n = 0;
        for (const auto& in : instrs_) n = std::max<int64_t>(n, in->neuron_trials());
        return n;
    }

    // Neuron update instructions that defer LIF's rare branches (kernel_neurons.h).
    int64_t deferred_neurons() const {
        int64_t n = 0;
        for (const auto& in : instrs_) n += in->defers_rare();
        return n;
    }

    // Mat-vec instructions that run as dense tiles (kernel_dense_dot.h).
    int64_t dense_products() const {
        int64_t n = 0;
        for (const auto& in : instrs_)
            if (auto* dot = dynamic_cast<const DotInstr<T>*>(in.get())) n += dot->q.dense_rt > 0;
        return n;
    }

    // Convolutions that run as dense tiles (kernel_conv_dense.h).
    int64_t dense_convolutions() const {
        int64_t n = 0;
        for (const auto& in : instrs_) n += dynamic_cast<const ConvDenseInstr<T>*>(in.get()) != nullptr;
        return n;
    }

    // The most stage buffers a dense mat-vec's tiles take (0: none dense).
    int64_t dense_stages() const {
        int64_t n = 0;
        for (const auto& in : instrs_)
            if (auto* dot = dynamic_cast<const DotInstr<T>*>(in.get()))
                n = std::max<int64_t>(n, dot->q.dense_stages);
        return n;
    }

    void close() override {
        if (closed_) return;
        closed_ = true;
        try {
            exec_.sync();
        } catch (...) {
        }
        configs_.clear();
        instrs_.clear();
        fused_.clear();
        exec_.close();
        staged_.clear();
        unpin();
        mem_.free_all();
    }

    // -- running ---------------------------------------------------------------
    void run(int64_t n_steps, std::vector<Feed<T>>& feeds, std::vector<ProbeRecord<T>>& probes,
             uint64_t user_stream) override {
        execute(n_steps, feeds, probes, user_stream, nullptr);
    }

    RunProfile profile(int64_t n_steps, std::vector<Feed<T>>& feeds,
                       std::vector<ProbeRecord<T>>& probes, uint64_t user_stream) override {
        RunProfile out;
        execute(n_steps, feeds, probes, user_stream, &out);
        return out;
    }

    // for instructions
    Exec& exec() { return exec_; }
    Memory& mem() { return mem_; }
    const DPools<T>& pools() const { return pools_; }
    int n_trials() const { return lay_.n_trials; }
    double dt() const { return lay_.dt; }
    bool fuse_neurons() const { return fuse_neurons_; }
    bool fuse_filters() const { return fuse_filters_; }
    // Drops every configuration (graphs and tables): the program changed.
    void invalidate() {
        for (auto& c : configs_) release(*c);
        configs_.clear();
    }

    template <typename X>
    const X* upload(const std::vector<X>& v) {
        const size_t bytes = v.size() * sizeof(X);
        const uint64_t ptr = mem_.alloc(bytes);
        h2d_staged(ptr, v.data(), bytes);
        return reinterpret_cast<const X*>(ptr);
    }
    // Copies host data to the device from a host copy kept until the stream is
    // synchronized (finish, close): cudaMemcpyAsync may read its source after
    // returning (page-locked memory, which includes heap neighbours sharing a
    // page with the pinned pools, or systems whose GPU reads pageable memory
    // directly), and the callers' sources are temporaries.
    void h2d_staged(uint64_t dst, const void* src, size_t bytes) {
        if (!bytes) return;
        const auto* b = static_cast<const unsigned char*>(src);
        staged_.emplace_back(b, b + bytes);
        exec_.h2d(dst, staged_.back().data(), bytes);
    }
    template <typename X>
    X* scratch(size_t n) {
        return reinterpret_cast<X*>(mem_.alloc(n * sizeof(X)));
    }
    // Consecutive addresses need no table.
    Addr addr(const std::vector<int64_t>& v) {
        Addr a;
        bool consecutive = true;
        for (size_t k = 1; k < v.size() && consecutive; ++k) consecutive = v[k] == v[0] + int64_t(k);
        if (consecutive && !v.empty()) {
            a.base = v[0];
        } else {
            a.p = upload(v);
        }
        return a;
    }
    const RunCtrl<T>* ctrl() const { return reinterpret_cast<const RunCtrl<T>*>(ctrl_); }
    RunCtrl<T>* ctrl_mut() const { return reinterpret_cast<RunCtrl<T>*>(ctrl_); }

    // for the configuration builder (step_config.h)
    DInstr<T>& instr(int64_t i) { return *instrs_[i]; }
    bool enabled(int64_t i) const { return enabled_[i]; }
    // The launch fusing instruction i with the mat-vec before it (or empty).
    const typename DInstr<T>::Fused& fused(int64_t i) const { return fused_[i]; }
    // Whether a launch of `parts` runs as phases: each part costs at most NC_PHASE_MAX.
    bool as_phases(const std::vector<PhasePart>& parts) const {
        bool small = !parts.empty() && phase_max_ > 0;
        for (const PhasePart& p : parts) small = small && p.cost <= phase_max_;
        return small;
    }
    // Issues (or, `dry`, counts) `steps` steps of a segment for one graph,
    // then, with `advance`, the step counter's advance (step_segments.h).
    int64_t issue_steps(Segment& seg, int64_t steps, bool advance, bool dry) {
        return Issuer<T>(exec_, ctrl_mut(), phase_max_ > 0, dry).steps(seg, steps, advance);
    }

  private:
    DeviceLayout<T> lay_;
    Exec exec_;
    StopCheck check_stop_;  // (declared before mem_, which takes the hooks)
    Memory mem_;
    DPools<T> pools_;
    Buffers<T> host_;  // host pools, for the CPU factories' checks
    uint64_t ctrl_ = 0;
    std::vector<std::unique_ptr<DInstr<T>>> instrs_;
    // per instruction: the launch fusing it with the mat-vec before it, or null
    std::vector<typename DInstr<T>::Fused> fused_;
    // NC_FUSE_NEURONS=1: a neuron update right after the mat-vec that writes
    // its inputs runs in the mat-vec's kernel (DInstr::after_dot);
    // NC_FUSE_FILTERS=1: so does a synapse filter of the mat-vec's outputs
    const bool fuse_neurons_ = env_knob(knobs::kFuseNeurons) != 0;
    const bool fuse_filters_ = env_knob(knobs::kFuseFilters) != 0;
    // NC_PHASE_MAX: launches of at most this many (element, trial) pairs per
    // kernel run as phases of a shared launch (phases.h); 0: never
    const int64_t phase_max_ = env_knob(knobs::kPhaseMax);
    int64_t phase_blocks_ = 1;  // blocks of a phases launch (NC_PHASE_BLOCKS)
    std::vector<bool> enabled_;
    std::vector<std::unique_ptr<Config>> configs_;  // most recently used last
    RunBuffers<T> run_bufs_;  // probes' outputs, feeds' data
    int64_t steps_done_ = 0;
    bool closed_ = false, poison_ = false;
    std::vector<void*> pinned_;  // page-locked host pools
    std::vector<std::vector<unsigned char>> staged_;  // sources of uploads in flight

    void unpin() {
        for (void* p : pinned_) exec_.unpin(p);
        pinned_.clear();
    }
    uint64_t user_stream_ = 0;

    // While a run has our stream ordered after the user's stream (`Entered`),
    // each new allocation orders it after that stream again: CuPy's pool hands
    // out memory freed on that stream, which kernels that another thread
    // queued there since (runs release the GIL) may still be using.
    bool entered_ = false;
    uint64_t entered_stream_ = 0;
    DeviceHooks ordered_allocations(DeviceHooks hooks) {
        hooks.alloc = [this, alloc = std::move(hooks.alloc)](size_t bytes) {
            const uint64_t ptr = alloc(bytes);
            if (entered_) exec_.enter(entered_stream_);
            return ptr;
        };
        return hooks;
    }
    // Our stream after the user's `stream` (exec_.enter), for this scope.
    struct Entered {
        Program& p;
        bool was;
        uint64_t was_stream;
        Entered(Program& prog, uint64_t stream)
            : p(prog), was(prog.entered_), was_stream(prog.entered_stream_) {
            p.exec_.enter(stream);
            p.entered_ = true;
            p.entered_stream_ = stream;
        }
        ~Entered() {
            p.entered_ = was;
            p.entered_stream_ = was_stream;
        }
    };

    // Orders the uploads of a loading call after, and before, the user's stream.
    // (Loading calls hold the GIL: no other thread queues work meanwhile, and
    // the one ordering suffices.)
    struct Ordered {
        Program& p;
        explicit Ordered(Program& prog) : p(prog) { p.exec_.enter(p.user_stream_); }
        ~Ordered() {
            try {
                p.exec_.leave(p.user_stream_);
            } catch (...) {
            }
        }
    };
    int64_t last_launches_ = 0, last_launches_alone_ = 0, last_launches_graph_ = 0;
    int64_t last_steps_per_graph_ = 0;
    int64_t last_segments_ = 0, last_batches_ = 0;

    void check_open() const {
        if (closed_) throw std::runtime_error("the device program is closed");
    }
    DInstr<T>& instr_at(int64_t i) {
        if (i < 0 || i >= size()) throw std::out_of_range("no instruction " + std::to_string(i));
        return *instrs_[i];
    }
    static void check_ranges(const std::vector<int64_t>& r, int64_t n, const char* what) {
        if (r.size() % 2) throw std::invalid_argument(std::string(what) + " ranges: odd length");
        for (size_t k = 0; k < r.size(); k += 2)
            if (r[k] < 0 || r[k + 1] < 0 || r[k] + r[k + 1] > n)
                throw std::out_of_range(std::string(what) + " range outside the pool");
    }

    std::unique_ptr<DInstr<T>> make(const InstrSpec& spec);

    // -- configurations: which launches make a step --------------------------
    Config& config_for(const std::vector<Feed<T>>& feeds, const std::vector<ProbeRecord<T>>& probes) {
        std::vector<int64_t> key;
        for (bool e : enabled_) key.push_back(e);
        key.push_back(-7);
        for (const auto& f : feeds) {
            key.push_back(f.after);
            key.push_back(static_cast<int64_t>(f.addrs.size()));
            key.insert(key.end(), f.addrs.begin(), f.addrs.end());
        }
        key.push_back(-8);
        for (const auto& p : probes) {
            key.push_back(static_cast<int64_t>(p.addrs.size()));
            key.insert(key.end(), p.addrs.begin(), p.addrs.end());
        }
        for (size_t c = 0; c < configs_.size(); ++c) {
            if (configs_[c]->key == key) {
                std::rotate(configs_.begin() + c, configs_.begin() + c + 1, configs_.end());
                return *configs_.back();
            }
        }
        if (configs_.size() >= kMaxConfigs) {
            release(*configs_.front());
            configs_.erase(configs_.begin());
        }
        auto cfg = std::make_unique<Config>();
        cfg->key = std::move(key);
        ConfigBuilder<T>(*this, *cfg).build(feeds, probes);
        configs_.push_back(std::move(cfg));
        return *configs_.back();
    }

    void release(Config& cfg) {
        cfg.graph_many.reset();
        for (auto& s : cfg.segments) s.graph.reset();
        for (uint64_t b : cfg.buffers) mem_.free(b);
        cfg.buffers.clear();
    }

    // -- per run -------------------------------------------------------------
    void upload_pools() {
        const size_t fs = sizeof(T), is = sizeof(int64_t);
        // The host pools are the truth between runs (reset, pickling and user
        // writes go there): upload all of them, the shared block included.
        const int64_t nf = lay_.f_shared + lay_.n_trials * lay_.f_state;
        const int64_t ni = lay_.i_shared + lay_.n_trials * lay_.i_state;
        if (nf) exec_.h2d(lay_.dev_f, lay_.host_f, nf * fs);
        if (ni) exec_.h2d(lay_.dev_i, lay_.host_i, ni * is);
    }

    void download_state() {
        // Only state is written on the device; shared signals never change there.
        const int64_t nf = lay_.n_trials * lay_.f_state, ni = lay_.n_trials * lay_.i_state;
        if (nf)
            exec_.d2h(lay_.host_f + lay_.f_shared, lay_.dev_f + lay_.f_shared * sizeof(T),
                      nf * sizeof(T));
        if (ni)
            exec_.d2h(lay_.host_i + lay_.i_shared,
                      lay_.dev_i + lay_.i_shared * sizeof(int64_t), ni * sizeof(int64_t));
    }

    void finish(std::vector<ProbeRecord<T>>& probes) {
        download_state();
        run_bufs_.download_probes(exec_, n_trials(), probes);
        exec_.sync();
        staged_.clear();
    }

    // A run: uploads, the steps (graphs, segments or, with `prof`, profiled
    // launches), downloads.
    void execute(int64_t n_steps, std::vector<Feed<T>>& feeds,
                 std::vector<ProbeRecord<T>>& probes, uint64_t user_stream, RunProfile* prof) {
        check_open();
        steps_done_ = 0;
        if (n_steps < 0) throw std::invalid_argument("n_steps must be non-negative");
        if (n_steps == 0) return;
        for (size_t i = 0; i < instrs_.size(); ++i)
            if (enabled_[i]) instrs_[i]->check_run(n_steps);
        RunBuffers<T>::check_probes(n_steps, probes);

        const Entered entered(*this, user_stream);
        bool ok = false;
        try {
            upload_pools();
            Config& cfg = config_for(feeds, probes);
            const RunCtrl<T> c = run_bufs_.prepare(*this, n_steps, feeds, probes, poison_);
            h2d_staged(ctrl_, &c, sizeof(c));
            if (prof)
                run_profiled(cfg, n_steps, *prof);
            else if (cfg.has_callbacks)
                run_segments(cfg, n_steps);
            else
                run_graphs(cfg, n_steps);
            ok = true;
        } catch (...) {
            try {
                finish(probes);
                exec_.leave(user_stream);
            } catch (...) {
            }
            throw;
        }
        if (ok) {
            finish(probes);
            steps_done_ = n_steps;
            exec_.leave(user_stream);
        }
    }

    void record_stats(const Config& cfg) {
        last_launches_ = cfg.launches_per_step;
        last_launches_alone_ = cfg.launches_alone;
        last_launches_graph_ = cfg.launches_per_graph;
        last_steps_per_graph_ = cfg.steps_per_graph;
        last_segments_ = static_cast<int64_t>(cfg.segments.size());
        last_batches_ = cfg.batches;
    }

    // Issues a segment's launch groups for step j, each alone (no phases
    // shared); `after(k)` runs after group k (a profile's timing mark).
    template <class Hook>
    void issue(Segment& seg, int64_t j, Hook&& after) {
        for (size_t k = 0; k < seg.launches.size(); ++k) {
            seg.launches[k](j);
            after(k);
        }
    }
    void run_graphs(Config& cfg, int64_t n_steps) {
        record_stats(cfg);
        const int64_t spg = cfg.steps_per_graph;
        Segment& seg = cfg.segments.front();
        auto body = [this, &seg](int64_t steps) {
            return [this, &seg, steps]() { issue_steps(seg, steps, true, false); };
        };
        const int64_t many = n_steps / spg * spg;  // steps in graphs of spg steps, then 1 each
        if (many > 0 && !cfg.graph_many) cfg.graph_many = exec_.capture(body(spg));
        if (many < n_steps && !seg.graph) seg.graph = exec_.capture(body(1));
        StopChecks checks(check_stop_);
        for (int64_t s = 0; s < n_steps;) {
            const int64_t s0 = s, end = s + checks.slice(n_steps - s);
            while (s < end) {
                const bool whole = s < many;
                exec_.launch(whole ? *cfg.graph_many : *seg.graph);
                s += whole ? spg : 1;
            }
            if (s < n_steps) between_slices(checks, s - s0, s);
        }
    }

    // Between two slices of a run's steps: waits for the device (the emulator
    // runs the queued steps then; the GPU's host would otherwise queue
    // steps far ahead of a stop), and checks for a stop (StopChecks), after
    // `done` steps.
    void between_slices(StopChecks& checks, int64_t slice_steps, int64_t done) {
        exec_.sync();
        steps_done_ = done;
        checks.between(slice_steps);
    }

    void run_segments(Config& cfg, int64_t n_steps) {
        record_stats(cfg);
        for (size_t k = 0; k < cfg.segments.size(); ++k) {
            Segment& seg = cfg.segments[k];
            const bool last = k + 1 == cfg.segments.size();
            if (seg.graph || (seg.launches.empty() && !last)) continue;
            seg.graph = exec_.capture([this, &seg, last]() { issue_steps(seg, 1, last, false); });
        }
        StopChecks checks(check_stop_);
        for (int64_t s = 0; s < n_steps;) {
            const int64_t s0 = s, end = s + checks.slice(n_steps - s);
            for (; s < end; ++s) {
                for (auto& seg : cfg.segments) {
                    if (seg.graph) exec_.launch(*seg.graph);
                    if (seg.callback >= 0) call(*instrs_[seg.callback]);
                }
                steps_done_ = s + 1;
            }
            if (s < n_steps) between_slices(checks, s - s0, s);
        }
    }

    // The steps of run_segments without graphs: every group issued directly,
    // a timing mark after each (callbacks and the step counter's advance are
    // groups too).  The marks of up to kMaxMarks are queued before the host
    // waits and reads them, so the device is not starved at every step.
    void run_profiled(Config& cfg, int64_t n_steps, RunProfile& out) {
        record_stats(cfg);
        out = profile_groups(cfg);
        const int64_t per_step = static_cast<int64_t>(out.groups.size());
        const int64_t chunk = std::max<int64_t>(1, (kMaxMarks - 1) / per_step);
        exec_.reserve_marks(static_cast<size_t>(1 + std::min(chunk, n_steps) * per_step));
        const auto start = std::chrono::steady_clock::now();
        for (int64_t s0 = 0; s0 < n_steps; s0 += chunk) {
            const int64_t n = std::min(chunk, n_steps - s0);
            size_t m = 0;
            auto mark = [this, &m](size_t) { exec_.mark(m++); };
            mark(0);
            for (int64_t s = s0; s < s0 + n; ++s) {
                for (auto& seg : cfg.segments) {
                    issue(seg, 0, mark);
                    if (seg.callback >= 0) {
                        call(*instrs_[seg.callback]);
                        mark(0);
                    }
                }
                exec_.for_each(1, Advance<T>{ctrl_mut(), 1});
                mark(0);
                steps_done_ = s + 1;
            }
            exec_.sync();
            for (size_t k = 1; k < m; ++k)
                out.groups[(k - 1) % per_step].seconds += exec_.seconds_between(k - 1, k);
        }
        out.steps = n_steps;
        out.wall_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }

    // The groups of a profile in the order run_profiled marks them, times 0.
    RunProfile profile_groups(const Config& cfg) const {
        RunProfile out;
        for (const auto& seg : cfg.segments) {
            for (size_t k = 0; k < seg.groups.size(); ++k) {
                const GroupInfo& g = seg.groups[k];
                out.groups.push_back(profile_group(g.instrs, g.label, g.launches));
                out.groups.back().phases = static_cast<int64_t>(seg.phases[k].size());
            }
            if (seg.callback >= 0) out.groups.push_back(profile_group({seg.callback}, "", 0));
        }
        out.groups.push_back(profile_group({}, "advance", 1));
        out.groups.back().phases = phase_max_ > 0 ? 1 : 0;
        out.idle = cfg.idle;
        return out;
    }

    ProfileGroup profile_group(std::vector<int64_t> instrs, const std::string& label,
                               int64_t launches) const {
        ProfileGroup g;
        g.launches = launches;
        if (!label.empty()) g.kinds.push_back(label);
        for (int64_t i : instrs) {
            const std::string& kind = instrs_[i]->kind;
            if (std::find(g.kinds.begin(), g.kinds.end(), kind) == g.kinds.end())
                g.kinds.push_back(kind);
        }
        g.instrs = std::move(instrs);
        return g;
    }

    // A callback sees its signals on the host: copy them there and back.
    void call(DInstr<T>& in) {
        const size_t fs = sizeof(T), is = sizeof(int64_t);
        for (size_t k = 0; k < in.f_ranges.size(); k += 2)
            exec_.d2h(lay_.host_f + in.f_ranges[k], lay_.dev_f + in.f_ranges[k] * fs,
                      in.f_ranges[k + 1] * fs);
        for (size_t k = 0; k < in.i_ranges.size(); k += 2)
            exec_.d2h(lay_.host_i + in.i_ranges[k], lay_.dev_i + in.i_ranges[k] * is,
                      in.i_ranges[k + 1] * is);
        exec_.sync();
        in.fn();
        for (size_t k = 0; k < in.f_ranges.size(); k += 2)
            exec_.h2d(lay_.dev_f + in.f_ranges[k] * fs, lay_.host_f + in.f_ranges[k],
                      in.f_ranges[k + 1] * fs);
        for (size_t k = 0; k < in.i_ranges.size(); k += 2)
            exec_.h2d(lay_.dev_i + in.i_ranges[k] * is, lay_.host_i + in.i_ranges[k],
                      in.i_ranges[k + 1] * is);
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc

#include "device_instrs.h"
