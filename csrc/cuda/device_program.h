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
#pragma once
#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "device_api.h"
#include "device_kernels.h"
#include "host_batch.h"
#include "knobs.h"

namespace nc {
namespace NC_DEV_NS {

// Graphs hold at most this many launches (so a step graph holds
// kGraphLaunches / launches-per-step steps, between 1 and kMaxStepsPerGraph).
constexpr int64_t kGraphLaunches = 1024;
constexpr int64_t kMaxStepsPerGraph = 64;
// Configurations (enabled instructions, feeds, probes) whose graphs are kept.
constexpr size_t kMaxConfigs = 4;
// Timing marks of a profiled run between two reads of them (so at most this
// many CUDA events): several steps are queued before the host waits.
constexpr int64_t kMaxMarks = 2048;

// Device memory, all of it from hooks.alloc, released through hooks.free.
class Memory {
  public:
    explicit Memory(DeviceHooks hooks) : hooks_(std::move(hooks)) {}
    uint64_t alloc(size_t bytes) {
        const uint64_t ptr = hooks_.alloc(bytes == 0 ? 8 : bytes);
        if (ptr == 0) throw std::runtime_error("device allocation of " + std::to_string(bytes) +
                                               " bytes returned a null pointer");
        live_.insert(ptr);
        return ptr;
    }
    void free(uint64_t ptr) {
        if (ptr == 0 || !live_.erase(ptr)) return;
        hooks_.free(ptr);
    }
    void free_all() {
        auto live = std::move(live_);
        live_.clear();
        for (uint64_t p : live) hooks_.free(p);
    }
    size_t live() const { return live_.size(); }

  private:
    DeviceHooks hooks_;
    std::unordered_set<uint64_t> live_;
};

// A reusable device buffer that grows when asked for more.
struct Growable {
    uint64_t ptr = 0;
    size_t bytes = 0;
    void ensure(Memory& mem, size_t need) {
        if (need <= bytes && ptr) return;
        mem.free(ptr);
        ptr = 0;
        bytes = std::max(need, bytes + bytes / 2);
        ptr = mem.alloc(bytes);
    }
};

template <typename T>
class Program;

template <typename T>
struct DotInstr;
template <typename T>
struct ConvDenseInstr;

// One loaded instruction.
template <typename T>
struct DInstr {
    using Launch = std::function<void(Exec&, const StepRef<T>&)>;
    virtual ~DInstr() = default;
    std::string kind;
    // element-wise instructions join batches instead of launching themselves
    bool simple = false;
    bool two_phase = false;  // simple, but must run alone as gather + scatter
    HostBatch<T> batch;
    // callbacks
    bool is_callback = false;
    std::function<void()> fn;
    std::vector<int64_t> f_ranges, i_ranges;

    virtual void launch(Exec&, const StepRef<T>&) {}
    virtual int64_t launches() const { return 1; }
    virtual void set_table(Program<T>&, const std::string& name, std::vector<double>) {
        throw std::invalid_argument(kind + ": this instruction has no table '" + name + "'");
    }
    virtual void check_run(int64_t n_steps) const {}
    // This instruction fused with `dot`, the instruction right before it: one
    // launch that runs the mat-vec and, in its kernel, this instruction where
    // the mat-vec wrote its inputs; then `rest` (null: nothing left), which
    // can run as the phases `rest_parts`.  Empty where this kind cannot follow
    // a mat-vec in its kernel (device_instrs_neurons.h, device_instrs_filters.h).
    struct Fused {
        Launch launch, rest;
        std::vector<PhasePart> rest_parts;
        explicit operator bool() const { return static_cast<bool>(launch); }
    };
    virtual Fused after_dot(Program<T>&, const DotInstr<T>&) { return {}; }
    // Appends the float addresses the instruction writes (in every trial);
    // false where it does not say (then any address may change).
    virtual bool writes(std::vector<int64_t>&) const { return false; }
    // The instruction's launch as phases (phases.h), stepped ones reading
    // `ctrl`; empty where it cannot run as phases.
    virtual std::vector<PhasePart> phase_parts(const RunCtrl<T>* ctrl) const { return {}; }
    // Neuron updates: the trials a thread updates when launched alone (NC_NEURON_TRIALS).
    virtual int neuron_trials() const { return 0; }
    // Neuron updates whose threads of many trials defer LIF's rare branches (NC_NEURON_DEFER).
    virtual bool defers_rare() const { return false; }
};

template <typename T>
class Program final : public DeviceProgram<T> {
  public:
    Program(const DeviceLayout<T>& lay, DeviceHooks hooks)
        : lay_(lay), exec_(lay.device), mem_(std::move(hooks)) {
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

  private:
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

    DeviceLayout<T> lay_;
    Exec exec_;
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
    // per-run buffers
    Growable sample_buf_, probe_ptrs_, probe_counts_, feed_ptrs_;
    std::vector<Growable> probe_bufs_, feed_bufs_;
    int64_t steps_done_ = 0;
    bool closed_ = false, poison_ = false;
    std::vector<void*> pinned_;  // page-locked host pools
    std::vector<std::vector<unsigned char>> staged_;  // sources of uploads in flight

    void unpin() {
        for (void* p : pinned_) exec_.unpin(p);
        pinned_.clear();
    }
    uint64_t user_stream_ = 0;

    // Orders the uploads of a loading call after, and before, the user's stream.
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
        build(*cfg, feeds, probes);
        configs_.push_back(std::move(cfg));
        return *configs_.back();
    }

    void release(Config& cfg) {
        cfg.graph_many.reset();
        for (auto& s : cfg.segments) s.graph.reset();
        for (uint64_t b : cfg.buffers) mem_.free(b);
        cfg.buffers.clear();
    }

    template <typename X>
    const X* cfg_upload(Config& cfg, const std::vector<X>& v) {
        const X* p = upload(v);
        cfg.buffers.push_back(reinterpret_cast<uint64_t>(p));
        return p;
    }
    Addr cfg_addr(Config& cfg, const std::vector<int64_t>& v) {
        Addr a = addr(v);
        if (a.p) cfg.buffers.push_back(reinterpret_cast<uint64_t>(a.p));
        return a;
    }

    void build(Config& cfg, const std::vector<Feed<T>>& feeds,
               const std::vector<ProbeRecord<T>>& probes) {
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
            add_batch(cfg, pending, false, std::move(pending_instrs));
            pending_instrs.clear();
            pending = HostBatch<T>();
        };
        auto feeds_after = [&](int64_t after) {
            std::vector<size_t> which;
            for (size_t f = 0; f < feeds.size(); ++f)
                if (feeds[f].after == after && !feeds[f].addrs.empty()) which.push_back(f);
            if (which.empty()) return;
            flush();
            add_feed(cfg, feeds, which);
            for (size_t f : which) written(feeds[f].addrs);
        };

        feeds_after(-1);
        for (int64_t i = 0; i < size(); ++i) {
            DInstr<T>& in = *instrs_[i];
            if (enabled_[i]) {
                if (in.is_callback) {
                    flush();
                    known.clear();
                    cfg.segments.back().callback = i;
                    cfg.segments.emplace_back();
                    cfg.has_callbacks = true;
                } else if (in.simple && in.two_phase) {
                    flush();
                    add_batch(cfg, in.batch, true, {i});
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
                } else if (i + 1 < size() && fused_[i + 1] && enabled_[i + 1] &&
                           !has_feed_after(feeds, i) &&
                           !(as_phases(in.phase_parts(ctrl())) &&
                             as_phases(instrs_[i + 1]->phase_parts(ctrl())))) {
                    // a mat-vec and the update that reads it: one kernel, then
                    // what the update has left (may join the next phases)
                    flush();
                    const typename DInstr<T>::Fused& f = fused_[i + 1];
                    const RunCtrl<T>* c = ctrl();
                    auto step = [this, c](typename DInstr<T>::Launch l) {
                        return [this, l, c](int64_t j) { l(exec_, StepRef<T>{c, j}); };
                    };
                    add_group(cfg, step(f.launch), {{i, i + 1}, "", 1});
                    if (f.rest) add_group(cfg, step(f.rest), {{i + 1}, "", 1}, f.rest_parts);
                    wrote(in);
                    wrote(*instrs_[i + 1]);
                    ++i;  // (no feed after the mat-vec; feeds after the update follow)
                } else {
                    flush();
                    DInstr<T>* ip = &in;
                    const RunCtrl<T>* c = ctrl();
                    add_group(
                        cfg, [this, ip, c](int64_t j) { ip->launch(exec_, StepRef<T>{c, j}); },
                        {{i}, "", ip->launches()}, ip->phase_parts(c));
                    wrote(in);
                }
            }
            feeds_after(i);
        }
        flush();
        add_probes(cfg, probes);
        cfg.launches_per_step += 1;  // Advance (once per graph; counted per step)
        // (graph size from the launches before phases share them: a bound)
        int64_t spg = kGraphLaunches / std::max<int64_t>(1, cfg.launches_per_step);
        cfg.steps_per_graph = std::max<int64_t>(1, std::min(spg, kMaxStepsPerGraph));
        if (cfg.has_callbacks) cfg.steps_per_graph = 1;
        cfg.launches_alone = cfg.launches_per_step;
        cfg.launches_per_step = count_launches(cfg);
        cfg.launches_per_graph =
            cfg.has_callbacks ? cfg.launches_per_step
                              : issue_steps(cfg.segments.front(), cfg.steps_per_graph, true, true);
    }

    static bool has_feed_after(const std::vector<Feed<T>>& feeds, int64_t i) {
        for (const auto& f : feeds)
            if (f.after == i && !f.addrs.empty()) return true;
        return false;
    }

    // Whether a launch of `parts` runs as phases: each part costs at most NC_PHASE_MAX.
    bool as_phases(const std::vector<PhasePart>& parts) const {
        bool small = !parts.empty() && phase_max_ > 0;
        for (const PhasePart& p : parts) small = small && p.cost <= phase_max_;
        return small;
    }

    // Adds a launch group to the configuration's last segment.
    // `parts`: the group as phases; used when every part has at most
    // NC_PHASE_MAX elements (parts without elements are left out).
    void add_group(Config& cfg, std::function<void(int64_t)> launch, GroupInfo info,
                   const std::vector<PhasePart>& parts = {}) {
        std::vector<PhaseDesc> descs;
        const bool small = as_phases(parts);
        for (const PhasePart& p : parts) {
            if (!small || p.n <= 0) continue;
            PhaseDesc d;
            d.kind = p.kind;
            d.n = p.n;
            d.fn = cfg_upload(cfg, p.fn);
            descs.push_back(d);
        }
        cfg.launches_per_step += info.launches;
        cfg.segments.back().launches.push_back(std::move(launch));
        cfg.segments.back().groups.push_back(std::move(info));
        cfg.segments.back().phases.push_back(std::move(descs));
    }

    void add_batch(Config& cfg, const HostBatch<T>& hb, bool two_phase,
                   std::vector<int64_t> instrs) {
        BatchArrays<T> b;
        b.n = hb.size();
        b.n_terms = static_cast<int64_t>(hb.kind.size());
        b.w = cfg_upload(cfg, hb.w);
        b.mode = cfg_upload(cfg, hb.mode);
        b.term0 = cfg_upload(cfg, hb.term0);
        b.kind = cfg_upload(cfg, hb.kind);
        b.ta = cfg_upload(cfg, hb.ta);
        b.tb = cfg_upload(cfg, hb.tb);
        b.value = cfg_upload(cfg, hb.value);
        T* scratch = nullptr;
        if (two_phase) {
            scratch = this->template scratch<T>(static_cast<size_t>(b.n_terms) * n_trials());
            cfg.buffers.push_back(reinterpret_cast<uint64_t>(scratch));
        }
        const DPools<T> p = pools_;
        const int64_t nt = n_trials();
        const double dt = lay_.dt;
        const BatchGather<T> gather{p, b, scratch};
        const BatchApply<T> apply{p, b, scratch, dt};
        std::vector<PhasePart> parts;
        if (scratch) parts.push_back(phase_part(gather, b.n_terms * nt));
        parts.push_back(phase_part(apply, b.n * nt));
        add_group(
            cfg,
            [this, gather, apply, nt](int64_t) {
                if (gather.scratch) exec_.for_each(gather.b.n_terms * nt, gather);
                exec_.for_each(apply.b.n * nt, apply);
            },
            {std::move(instrs), "", two_phase ? 2 : 1}, parts);
        cfg.batches += 1;
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
    ElementTables upload_elements(Config& cfg, const Elements& el) {
        ElementTables t;
        t.n = static_cast<int64_t>(el.addrs.size());
        t.addr = cfg_addr(cfg, el.addrs);
        t.owner = cfg_upload(cfg, el.owner);
        t.k = cfg_upload(cfg, el.k);
        t.size = cfg_upload(cfg, el.sizes);
        return t;
    }

    void add_feed(Config& cfg, const std::vector<Feed<T>>& feeds, const std::vector<size_t>& which) {
        Elements el;
        for (const auto& f : feeds) el.sizes.push_back(static_cast<int64_t>(f.addrs.size()));
        for (size_t f : which) el.add(static_cast<int64_t>(f), feeds[f].addrs);
        const ElementTables t = upload_elements(cfg, el);
        FeedApply<T> fa;
        fa.p = pools_;
        fa.n = t.n;
        fa.addr = t.addr;
        fa.fid = t.owner;
        fa.k = t.k;
        fa.size = t.size;
        push_stepped(cfg, fa, "feed");
    }

    void add_probes(Config& cfg, const std::vector<ProbeRecord<T>>& probes) {
        Elements el;
        for (size_t q = 0; q < probes.size(); ++q) {
            el.sizes.push_back(static_cast<int64_t>(probes[q].addrs.size()));
            el.add(static_cast<int64_t>(q), probes[q].addrs);
        }
        if (el.addrs.empty()) return;
        const ElementTables t = upload_elements(cfg, el);
        ProbeGather<T> pg;
        pg.p = pools_;
        pg.n = t.n;
        pg.n_probes = static_cast<int64_t>(probes.size());
        pg.addr = t.addr;
        pg.pid = t.owner;
        pg.k = t.k;
        pg.size = t.size;
        push_stepped(cfg, pg, "probe");
    }

    // A launch over (element, trial) that reads the run step (field `step`).
    template <typename K>
    void push_stepped(Config& cfg, K kernel, const char* label) {
        const RunCtrl<T>* c = ctrl();
        const int64_t nt = n_trials();
        kernel.step = StepRef<T>{c, 0};
        const std::vector<PhasePart> parts{phase_part(kernel, kernel.n * nt)};
        add_group(
            cfg,
            [this, kernel, c, nt](int64_t j) mutable {
                kernel.step = StepRef<T>{c, j};
                exec_.for_each(kernel.n * nt, kernel);
            },
            {{}, label, 1}, parts);
    }

    // -- per run -------------------------------------------------------------
    std::vector<int64_t> check_probes(int64_t n_steps, const std::vector<ProbeRecord<T>>& probes) {
        std::vector<int64_t> samples;
        for (const auto& p : probes) {
            int64_t count = 0;
            for (int64_t s = 0; s < n_steps; ++s) count += p.mask[s] != 0;
            if (count > p.n_samples) throw std::logic_error("probe buffer overflow");
            samples.push_back(count);
        }
        return samples;
    }

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

    void prepare_run(int64_t n_steps, const std::vector<Feed<T>>& feeds,
                     const std::vector<ProbeRecord<T>>& probes, const std::vector<int64_t>& samples) {
        const int64_t nt = n_trials();
        RunCtrl<T> c;
        c.step_base = 0;
        c.n_steps = n_steps;
        // probes: a buffer each, their pointers, sample counts and the sample table
        const size_t np = probes.size();
        if (probe_bufs_.size() < np) probe_bufs_.resize(np);
        std::vector<T*> outs(np);
        std::vector<int64_t> counts(np);
        for (size_t q = 0; q < np; ++q) {
            const size_t bytes = static_cast<size_t>(nt) * probes[q].n_samples *
                                 probes[q].addrs.size() * sizeof(T);
            probe_bufs_[q].ensure(mem_, bytes);
            if (poison_ && bytes) exec_.fill(probe_bufs_[q].ptr, 0xFF, bytes);
            outs[q] = reinterpret_cast<T*>(probe_bufs_[q].ptr);
            counts[q] = probes[q].n_samples;
        }
        if (np) {
            std::vector<int32_t> table(static_cast<size_t>(n_steps) * np, -1);
            std::vector<int64_t> next(np, 0);
            for (int64_t s = 0; s < n_steps; ++s)
                for (size_t q = 0; q < np; ++q)
                    if (probes[q].mask[s]) table[s * np + q] = static_cast<int32_t>(next[q]++);
            sample_buf_.ensure(mem_, table.size() * sizeof(int32_t));
            h2d_staged(sample_buf_.ptr, table.data(), table.size() * sizeof(int32_t));
            probe_ptrs_.ensure(mem_, np * sizeof(T*));
            h2d_staged(probe_ptrs_.ptr, outs.data(), np * sizeof(T*));
            probe_counts_.ensure(mem_, np * sizeof(int64_t));
            h2d_staged(probe_counts_.ptr, counts.data(), np * sizeof(int64_t));
            c.probe_sample = reinterpret_cast<const int32_t*>(sample_buf_.ptr);
            c.probe_out = reinterpret_cast<T* const*>(probe_ptrs_.ptr);
            c.probe_samples = reinterpret_cast<const int64_t*>(probe_counts_.ptr);
        }
        // feeds: the whole run's data, uploaded once
        const size_t nfd = feeds.size();
        if (feed_bufs_.size() < nfd) feed_bufs_.resize(nfd);
        std::vector<const T*> data(nfd);
        for (size_t f = 0; f < nfd; ++f) {
            const size_t bytes = static_cast<size_t>(nt) * n_steps * feeds[f].addrs.size() * sizeof(T);
            feed_bufs_[f].ensure(mem_, bytes);
            if (bytes) exec_.h2d(feed_bufs_[f].ptr, feeds[f].data, bytes);
            data[f] = reinterpret_cast<const T*>(feed_bufs_[f].ptr);
        }
        if (nfd) {
            feed_ptrs_.ensure(mem_, nfd * sizeof(T*));
            h2d_staged(feed_ptrs_.ptr, data.data(), nfd * sizeof(T*));
            c.feed_data = reinterpret_cast<const T* const*>(feed_ptrs_.ptr);
        }
        h2d_staged(ctrl_, &c, sizeof(c));
    }

    void finish(std::vector<ProbeRecord<T>>& probes, const std::vector<int64_t>& samples) {
        download_state();
        for (size_t q = 0; q < probes.size() && q < probe_bufs_.size(); ++q) {
            const size_t bytes = static_cast<size_t>(n_trials()) * probes[q].n_samples *
                                 probes[q].addrs.size() * sizeof(T);
            if (bytes && probe_bufs_[q].ptr) exec_.d2h(probes[q].out, probe_bufs_[q].ptr, bytes);
        }
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
        std::vector<int64_t> samples = check_probes(n_steps, probes);

        exec_.enter(user_stream);
        bool ok = false;
        try {
            upload_pools();
            Config& cfg = config_for(feeds, probes);
            prepare_run(n_steps, feeds, probes, samples);
            if (prof)
                run_profiled(cfg, n_steps, *prof);
            else if (cfg.has_callbacks)
                run_segments(cfg, n_steps);
            else
                run_graphs(cfg, n_steps);
            ok = true;
        } catch (...) {
            try {
                finish(probes, samples);
                exec_.leave(user_stream);
            } catch (...) {
            }
            throw;
        }
        if (ok) {
            finish(probes, samples);
            steps_done_ = n_steps;
            exec_.leave(user_stream);
        }
    }

    // Issues launch groups while a graph is captured: consecutive groups that
    // run as phases (Segment::phases) are held back and issued as one phases
    // launch (phases.h) when a group that cannot follows, when the list is
    // full, or when the graph ends.  A group held alone launches as it would
    // without phases.  `dry`: counts the launches, issues nothing.
    struct Issuer {
        Program& prog;
        bool dry = false;
        PhaseList list;
        int held = 0;                // groups in `list`
        std::function<void()> lone;  // the last held group's own launch
        int64_t lone_launches = 0;
        int64_t launches = 0;        // issued (or counted) so far

        explicit Issuer(Program& p, bool count_only = false) : prog(p), dry(count_only) {}

        void group(Segment& seg, size_t k, int64_t j) {
            item(seg.phases[k], j, seg.groups[k].launches, [&seg, k, j]() { seg.launches[k](j); });
        }
        // The step counter's advance, at the end of a graph.
        void advance(int64_t steps) {
            Program& pr = prog;
            std::vector<PhaseDesc> ph;
            if (prog.phase_max_ > 0) {
                PhaseDesc d;
                d.kind = kPhaseAdvance;
                d.n = 1;
                d.fn = prog.ctrl_mut();
                ph.push_back(d);
            }
            item(ph, steps, 1,
                 [&pr, steps]() { pr.exec_.for_each(1, Advance<T>{pr.ctrl_mut(), steps}); });
        }
        void flush() {
            if (held == 0) return;
            if (!dry) {
                if (held == 1)
                    lone();
                else
                    prog.exec_.template phases<T>(list);
            }
            launches += held == 1 ? lone_launches : 1;
            list.n = 0;
            held = 0;
        }

      private:
        // A group of phases `ph` (none: it launches alone) for step j, whose
        // own launch `own` issues `own_launches` kernels.
        void item(const std::vector<PhaseDesc>& ph, int64_t j, int64_t own_launches,
                  std::function<void()> own) {
            if (ph.empty()) {
                flush();
                if (!dry) own();
                launches += own_launches;
                return;
            }
            if (list.n + static_cast<int>(ph.size()) > kMaxPhases) flush();
            for (PhaseDesc d : ph) {
                d.j = j;
                list.d[list.n++] = d;
            }
            held += 1;
            lone = std::move(own);
            lone_launches = own_launches;
        }
    };

    // Issues (or, `dry`, counts) `steps` steps of segment `seg` for one graph,
    // then, with `advance`, the step counter's advance by `steps` (graphs of
    // the only segment, or of a step's last segment).  Returns the launches.
    int64_t issue_steps(Segment& seg, int64_t steps, bool advance, bool dry) {
        Issuer is(*this, dry);
        for (int64_t j = 0; j < steps; ++j)
            for (size_t k = 0; k < seg.launches.size(); ++k) is.group(seg, k, j);
        if (advance) is.advance(steps);
        is.flush();
        return is.launches;
    }

    // Launches of one step as issued in a graph of one step (phases shared).
    int64_t count_launches(Config& cfg) {
        int64_t n = 0;
        for (size_t k = 0; k < cfg.segments.size(); ++k)
            n += issue_steps(cfg.segments[k], 1, k + 1 == cfg.segments.size(), true);
        return n;
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
        const int64_t full = n_steps / spg, rem = n_steps % spg;
        if (full > 0) {
            if (!cfg.graph_many) cfg.graph_many = exec_.capture(body(spg));
            for (int64_t g = 0; g < full; ++g) exec_.launch(*cfg.graph_many);
        }
        if (rem > 0) {
            if (!seg.graph) seg.graph = exec_.capture(body(1));
            for (int64_t g = 0; g < rem; ++g) exec_.launch(*seg.graph);
        }
    }

    void run_segments(Config& cfg, int64_t n_steps) {
        record_stats(cfg);
        for (size_t k = 0; k < cfg.segments.size(); ++k) {
            Segment& seg = cfg.segments[k];
            const bool last = k + 1 == cfg.segments.size();
            if (seg.graph || (seg.launches.empty() && !last)) continue;
            seg.graph = exec_.capture([this, &seg, last]() { issue_steps(seg, 1, last, false); });
        }
        for (int64_t s = 0; s < n_steps; ++s) {
            for (auto& seg : cfg.segments) {
                if (seg.graph) exec_.launch(*seg.graph);
                if (seg.callback >= 0) call(*instrs_[seg.callback]);
            }
            steps_done_ = s + 1;
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
