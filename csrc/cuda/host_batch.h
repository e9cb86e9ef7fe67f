// Element-wise work in host form (resets, copies, time updates, element-wise
// products and the batches they merge into), before it is uploaded as a
// BatchApply (device_kernels.h): grouping the terms of written addresses,
// merging consecutive instructions into one launch, passing values on between
// them.  Part of the device program (device_program.h), which defines
// NC_DEV_NS before including it.
#pragma once
#include <cmath>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "device_kernels.h"

namespace nc {
namespace NC_DEV_NS {

// Calls f on each float address a term of kind k reads (ta, then tb).
template <class F>
void for_term_reads(int32_t k, int64_t ta, int64_t tb, F&& f) {
    const int32_t base = k & kTermBase;
    if (base == kValue || base == kProduct) f(ta);
    if (base == kProduct) f(tb);
}

// Element-wise work in host form, before upload (see BatchApply).
template <typename T>
struct HostBatch {
    std::vector<int64_t> w;
    std::vector<int32_t> mode;
    std::vector<int64_t> term0{0};
    std::vector<int32_t> kind;
    std::vector<int64_t> ta, tb;
    std::vector<T> value;
    std::vector<int64_t> f_reads;   // float addresses read (for conflict checks)
    std::vector<int64_t> i_writes;  // int addresses written (time_update's step)

    int64_t size() const { return static_cast<int64_t>(w.size()); }
    bool empty() const { return w.empty(); }

    // Whether `o` may run in the same launch after this batch: neither reads
    // what the other writes (so items stay independent), no int address is
    // written by both, and an address both write is written by SET or INC
    // items (merged by `merge`), not by a time update.
    bool can_merge(const HostBatch& o) const {
        std::unordered_map<int64_t, int32_t> mode_of;
        for (size_t u = 0; u < w.size(); ++u) mode_of.emplace(w[u], mode[u]);
        const std::unordered_set<int64_t> reads(f_reads.begin(), f_reads.end());
        for (size_t u = 0; u < o.w.size(); ++u) {
            if (reads.count(o.w[u])) return false;
            auto it = mode_of.find(o.w[u]);
            if (it != mode_of.end() && (it->second == kTime || o.mode[u] == kTime)) return false;
        }
        for (int64_t a : o.f_reads)
            if (mode_of.count(a)) return false;
        const std::unordered_set<int64_t> iw(i_writes.begin(), i_writes.end());
        for (int64_t a : o.i_writes)
            if (iw.count(a)) return false;
        return true;
    }

    // Lets `o` (to run after this batch) read what this batch writes although
    // both share a launch, whose items see the values from before it: a term
    // of `o` reading such an address is rewritten to compute what this batch
    // stores there, where that is one term (a SET) or a reset to zero plus
    // one term (a SUM 0 + t: the term gets kZeroOut, so the result is the
    // same to the bit).  Into a product only a value passes (with kZeroA for
    // a 0 + x).  So a chain of copies and scalings through passthrough nodes
    // becomes one launch.  False (`o` unchanged) where a read cannot be
    // rewritten (an increment, a time, a longer sum, anything but a value
    // into a product, a product of two such values).  can_merge then decides:
    // a rewritten term reads only what this batch reads, so it refuses an `o`
    // that writes such an address.
    bool forward(HostBatch& o) const {
        struct Source {
            int32_t kind;  // of the term giving the value, with its flags
            int64_t a, b;
            T v;
        };
        std::unordered_map<int64_t, Source> src;
        std::unordered_set<int64_t> written(w.begin(), w.end());
        for (size_t u = 0; u < w.size(); ++u) {
            const int64_t j0 = term0[u], j1 = term0[u + 1];
            if (mode[u] == kSet && j1 > j0 && (kind[j1 - 1] & kTermBase) != kStep)
                src[w[u]] = {kind[j1 - 1], ta[j1 - 1], tb[j1 - 1], value[j1 - 1]};
            else if (mode[u] == kSum && j1 - j0 == 2 && kind[j0] == kConst &&
                     value[j0] == T(0) && !std::signbit(value[j0]) &&
                     (kind[j0 + 1] & kTermBase) != kStep)
                src[w[u]] = {kind[j0 + 1] | kZeroOut, ta[j0 + 1], tb[j0 + 1], value[j0 + 1]};
        }
        HostBatch r = o;
        for (size_t j = 0; j < r.kind.size(); ++j) {
            int32_t& k = r.kind[j];
            const int32_t base = k & kTermBase;
            if (base == kValue && written.count(r.ta[j])) {
                auto it = src.find(r.ta[j]);
                if (it == src.end()) return false;
                const Source& s = it->second;  // (0 + (0 + x) is 0 + x)
                k = s.kind | ((k & (kZeroA | kZeroOut)) ? kZeroOut : 0);
                r.ta[j] = s.a;
                r.tb[j] = s.b;
                r.value[j] = s.v;
            } else if (base == kProduct) {
                const bool fa = written.count(r.ta[j]) != 0, fb = written.count(r.tb[j]) != 0;
                if (!fa && !fb) continue;
                if ((fa && fb) || (fb && (k & kZeroA))) return false;
                if (fb) std::swap(r.ta[j], r.tb[j]);  // (x * y == y * x in IEEE arithmetic)
                auto it = src.find(r.ta[j]);
                if (it == src.end() || (it->second.kind & kTermBase) != kValue) return false;
                const bool zero = (it->second.kind & (kZeroA | kZeroOut)) || (k & kZeroA);
                k = kProduct | (zero ? kZeroA : 0) | (k & kZeroOut);
                r.ta[j] = it->second.a;
            }
        }
        r.f_reads.clear();
        for (size_t j = 0; j < r.kind.size(); ++j)
            for_term_reads(r.kind[j], r.ta[j], r.tb[j],
                           [&r](int64_t a) { r.f_reads.push_back(a); });
        o = std::move(r);
        return true;
    }

    // Items that increment an address holding a known constant (`known`:
    // set by an earlier batch of this step and not written since) and that
    // this batch does not write become SUMs starting from that constant: the
    // same additions, without reading the address; `forward` can then pass
    // the value on (a reset to zero and one increment: 0 + x).
    void start_from_known(HostBatch& o, const std::unordered_map<int64_t, T>& known) const {
        const std::unordered_set<int64_t> mine(w.begin(), w.end());
        HostBatch r = o;
        r.kind.clear();
        r.ta.clear();
        r.tb.clear();
        r.value.clear();
        r.term0.assign(1, 0);
        bool changed = false;
        for (size_t u = 0; u < o.w.size(); ++u) {
            auto it = known.find(o.w[u]);
            if (o.mode[u] == kInc && it != known.end() && !mine.count(o.w[u])) {
                r.mode[u] = kSum;
                r.kind.push_back(kConst);
                r.ta.push_back(0);
                r.tb.push_back(0);
                r.value.push_back(it->second);
                changed = true;
            }
            for (int64_t j = o.term0[u]; j < o.term0[u + 1]; ++j) {
                r.kind.push_back(o.kind[j]);
                r.ta.push_back(o.ta[j]);
                r.tb.push_back(o.tb[j]);
                r.value.push_back(o.value[j]);
            }
            r.term0.push_back(static_cast<int64_t>(r.kind.size()));
        }
        if (changed) o = std::move(r);
    }

    // What this batch leaves in `known` (see start_from_known): an address it
    // sets to a constant holds that constant; any other address it writes is
    // forgotten.
    void record_known(std::unordered_map<int64_t, T>& known) const {
        for (size_t u = 0; u < w.size(); ++u) {
            const int64_t j1 = term0[u + 1];
            if (mode[u] == kSet && j1 > term0[u] && kind[j1 - 1] == kConst)
                known[w[u]] = value[j1 - 1];
            else
                known.erase(w[u]);
        }
    }

    // Adds the items of `o` (see can_merge) as if they ran after this batch's:
    // an item writing an address this batch writes joins that item.  A SET or
    // a SUM (elementwise_inc from I) replaces its terms; an INC adds its terms
    // (after a SET, the item becomes a SUM of the set value and the
    // increments: the same additions in order).
    void merge(const HostBatch& o) {
        struct Item {
            int32_t mode;
            std::vector<size_t> terms;  // indices into the combined term table
        };
        const size_t shift = kind.size();
        std::vector<Item> items;
        std::unordered_map<int64_t, size_t> slot;
        for (size_t u = 0; u < w.size(); ++u) {
            slot.emplace(w[u], u);
            Item it{mode[u], {}};
            for (int64_t j = term0[u]; j < term0[u + 1]; ++j) it.terms.push_back(j);
            items.push_back(std::move(it));
        }
        std::vector<int64_t> out_w = w;
        for (size_t u = 0; u < o.w.size(); ++u) {
            std::vector<size_t> add;
            for (int64_t j = o.term0[u]; j < o.term0[u + 1]; ++j) add.push_back(shift + j);
            auto hit = slot.find(o.w[u]);
            if (hit == slot.end()) {
                slot.emplace(o.w[u], items.size());
                out_w.push_back(o.w[u]);
                items.push_back({o.mode[u], std::move(add)});
                continue;
            }
            Item& it = items[hit->second];
            if (o.mode[u] == kSet || o.mode[u] == kSum) {  // neither reads the old value
                it = {o.mode[u], std::move(add)};
            } else {  // INC
                if (it.mode == kSet) it = {kSum, {it.terms.back()}};
                it.terms.insert(it.terms.end(), add.begin(), add.end());
            }
        }
        // the combined term table, then the items' terms in item order
        std::vector<int32_t> all_kind = std::move(kind);
        std::vector<int64_t> all_ta = std::move(ta), all_tb = std::move(tb);
        std::vector<T> all_value = std::move(value);
        all_kind.insert(all_kind.end(), o.kind.begin(), o.kind.end());
        all_ta.insert(all_ta.end(), o.ta.begin(), o.ta.end());
        all_tb.insert(all_tb.end(), o.tb.begin(), o.tb.end());
        all_value.insert(all_value.end(), o.value.begin(), o.value.end());
        w = std::move(out_w);
        mode.clear();
        term0.assign(1, 0);
        kind.clear();
        ta.clear();
        tb.clear();
        value.clear();
        for (const Item& it : items) {
            mode.push_back(it.mode);
            for (size_t j : it.terms) {
                kind.push_back(all_kind[j]);
                ta.push_back(all_ta[j]);
                tb.push_back(all_tb[j]);
                value.push_back(all_value[j]);
            }
            term0.push_back(static_cast<int64_t>(kind.size()));
        }
        f_reads.insert(f_reads.end(), o.f_reads.begin(), o.f_reads.end());
        i_writes.insert(i_writes.end(), o.i_writes.begin(), o.i_writes.end());
    }
};

struct Term {
    int32_t kind;
    int64_t a, b;
    double v;
};

// Groups (written address, term) pairs by address, in order of first write.
// Returns the batch and whether one item reads another's address (then the
// batch must run as gather + scatter).
template <typename T>
std::pair<HostBatch<T>, bool> group_terms(const std::vector<int64_t>& w,
                                          const std::vector<Term>& terms, int32_t mode) {
    HostBatch<T> hb;
    std::unordered_map<int64_t, size_t> slot;
    std::vector<std::vector<size_t>> members;
    for (size_t k = 0; k < w.size(); ++k) {
        auto it = slot.find(w[k]);
        if (it == slot.end()) {
            it = slot.emplace(w[k], hb.w.size()).first;
            hb.w.push_back(w[k]);
            hb.mode.push_back(mode);
            members.emplace_back();
        }
        members[it->second].push_back(k);
    }
    bool overlap = false;
    for (size_t u = 0; u < hb.w.size(); ++u) {
        for (size_t k : members[u]) {
            const Term& t = terms[k];
            hb.kind.push_back(t.kind);
            hb.ta.push_back(t.a);
            hb.tb.push_back(t.b);
            hb.value.push_back(static_cast<T>(t.v));
            for_term_reads(t.kind, t.a, t.b, [&](int64_t a) {
                hb.f_reads.push_back(a);
                auto hit = slot.find(a);
                if (hit != slot.end() && hit->second != u) overlap = true;
            });
        }
        hb.term0.push_back(static_cast<int64_t>(hb.kind.size()));
    }
    return {std::move(hb), overlap};
}

}  // namespace NC_DEV_NS
}  // namespace nc
