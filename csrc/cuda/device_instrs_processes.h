// Loading process_table: processes whose outputs the host tabulated.
// Included by device_instrs.h, after its shared helpers.
#pragma once

namespace nc {
namespace NC_DEV_NS {

template <typename T>
struct TableInstr : DInstr<T> {
    ProcessTable<T> k;
    std::vector<int64_t> m, period, shared;
    int n_trials = 1;
    bool loaded = false, stepped = false;
    int64_t step_rows = 0;
    std::vector<int64_t> slot;  // per op: its column of the rows table, or -1
    int64_t row_steps = 0;      // steps the rows table covers
    TableState host_state;      // what `state` holds
    Growable table, rows;
    TableState* state = nullptr;  // device
    int64_t* offset = nullptr;    // device, per op
    std::vector<double> host_table;

    // threads of the kernel: one per trial (serial) or per element and trial
    int64_t threads() const { return k.n_elem == 0 ? 0 : k.serial ? n_trials : k.n_elem * n_trials; }

    void launch(Exec& ex, const StepRef<T>& s) override {
        ProcessTable<T> kk = k;
        kk.step = s;
        ex.for_each(threads(), kk);
    }

    std::vector<PhasePart> phase_parts(const RunCtrl<T>* ctrl) const override {
        ProcessTable<T> kk = k;
        kk.step = StepRef<T>{ctrl, 0};
        return {phase_part(kk, threads())};
    }

    void check_run(int64_t n_steps) const override {
        if (k.n_elem == 0) return;
        if (!loaded) throw std::logic_error("process_table: table not loaded");
        if (stepped && n_steps > step_rows)
            throw std::logic_error("process_table: no table row for step " +
                                   std::to_string(step_rows) + " of this run");
        if (k.n_indexed > 0 && n_steps > row_steps)
            throw std::logic_error("process_table: no row index for step " +
                                   std::to_string(row_steps) + " of this run");
    }

    // The indexed operators' rows for the steps of the next run (the same
    // checks as the CPU ProcessTable::set_table).
    void set_rows(Program<T>& prog, std::vector<double> data) {
        row_steps = processes::check_table_rows(period, slot, k.n_indexed, data);
        rows.ensure(prog.mem(), data.size() * sizeof(double));
        prog.exec().h2d(rows.ptr, data.data(), data.size() * sizeof(double));
        host_state.rows = reinterpret_cast<const double*>(rows.ptr);
        prog.exec().h2d(reinterpret_cast<uint64_t>(state), &host_state, sizeof(host_state));
        prog.exec().sync();  // `data` goes out of scope
    }

    void set_table(Program<T>& prog, const std::string& name, std::vector<double> data) override {
        if (name == "rows") return set_rows(prog, std::move(data));
        if (name != "table") return DInstr<T>::set_table(prog, name, std::move(data));
        // the same checks and layout as the CPU ProcessTable::set_table
        const processes::TableLayout layout = processes::table_layout(
            m, period, shared, n_trials, static_cast<int64_t>(data.size()));
        TableState& st = host_state;
        st.per_trial = layout.per_trial;
        st.step_rows = step_rows = layout.step_rows;
        const std::vector<int64_t>& off = layout.offset;
        host_table = std::move(data);
        table.ensure(prog.mem(), host_table.size() * sizeof(double));
        if (!host_table.empty())
            prog.exec().h2d(table.ptr, host_table.data(), host_table.size() * sizeof(double));
        st.table = reinterpret_cast<const double*>(table.ptr);
        if (!off.empty())
            prog.exec().h2d(reinterpret_cast<uint64_t>(offset), off.data(), off.size() * sizeof(int64_t));
        prog.exec().h2d(reinterpret_cast<uint64_t>(state), &st, sizeof(st));
        prog.exec().sync();  // the host copies above may go out of scope
        loaded = true;
    }
};

template <typename T>
InstrPtr<T> make_process_table(const InstrSpec& spec, Program<T>& prog) {
    auto in = std::make_unique<TableInstr<T>>();
    in->m = spec.int_array("m");
    in->period = spec.int_array("period");
    in->shared = spec.int_array("shared");
    in->n_trials = prog.n_trials();
    in->stepped = std::find(in->period.begin(), in->period.end(), 0) != in->period.end();
    const ElementOwners owners = element_owners(in->m);
    auto& k = in->k;
    const auto& y = spec.int_array("Y");
    k.p = prog.pools();
    k.n_elem = static_cast<int64_t>(owners.owner.size());
    k.serial = has_duplicates(y);
    k.dt = prog.dt();
    k.time = int_scalar(spec, "time");
    k.m = prog.upload(in->m);
    k.period = prog.upload(in->period);
    k.inc = prog.upload(spec.int_array("inc"));
    k.shared = prog.upload(in->shared);
    k.elem0 = prog.upload(owners.first);
    k.op = prog.upload(owners.owner);
    processes::IndexedSlots slots = processes::indexed_slots(in->period);
    in->slot = std::move(slots.slot);
    k.slot = prog.upload(in->slot);
    k.n_indexed = slots.n;
    k.y = prog.addr(y);
    in->state = prog.template scratch<TableState>(1);
    in->offset = prog.template scratch<int64_t>(std::max<size_t>(in->m.size(), 1));
    k.state = in->state;
    k.offset = in->offset;
    return in;
}

}  // namespace NC_DEV_NS
}  // namespace nc
