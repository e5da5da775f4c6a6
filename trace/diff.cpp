#include "trace/diff.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string_view>

namespace trace {

namespace {

std::vector<std::string_view> lines_of(const std::string& s) {
    std::vector<std::string_view> out;
    std::size_t pos = 0;
    while (pos < s.size()) {
        const auto nl = s.find('\n', pos);
        const std::size_t end = nl == std::string::npos ? s.size() : nl;
        out.emplace_back(s.data() + pos, end - pos);
        pos = end + 1;
    }
    return out;
}

}  // namespace

std::vector<std::string> line_diff(const std::string& a, const std::string& b) {
    const auto la = lines_of(a), lb = lines_of(b);
    std::size_t pre = 0;
    while (pre < la.size() && pre < lb.size() && la[pre] == lb[pre]) ++pre;
    std::size_t suf = 0;
    while (suf < la.size() - pre && suf < lb.size() - pre &&
           la[la.size() - 1 - suf] == lb[lb.size() - 1 - suf])
        ++suf;
    const std::size_t n = la.size() - pre - suf, m = lb.size() - pre - suf;
    // lcs[i][j]: LCS length of la[pre+i..] and lb[pre+j..] within the middle part.
    std::vector<std::vector<std::uint32_t>> lcs(n + 1, std::vector<std::uint32_t>(m + 1, 0));
    for (std::size_t i = n; i-- > 0;)
        for (std::size_t j = m; j-- > 0;)
            lcs[i][j] = la[pre + i] == lb[pre + j] ? lcs[i + 1][j + 1] + 1
                                                   : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    std::vector<std::string> out;
    std::size_t i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && la[pre + i] == lb[pre + j]) {
            ++i;
            ++j;
        } else if (j == m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1])) {
            out.push_back("-" + std::string(la[pre + i++]));
        } else {
            out.push_back("+" + std::string(lb[pre + j++]));
        }
    }
    return out;
}

DiffResult diff(const Trace& t, const ModelFactory& a, const ModelFactory& b) {
    if (!a || !b) throw std::invalid_argument("trace::diff: a model factory is empty");
    auto ha = a(t.host), hb = b(t.host);
    if (!ha || !hb) throw std::invalid_argument("trace::diff: a model factory returned null");
    DiffResult res;
    res.file = t.file;
    res.name_a = ha->name();
    res.name_b = hb->name();
    Runner ra(t, *ha), rb(t, *hb);
    while (!ra.done()) {
        const StepRecord sa = ra.step(), sb = rb.step();
        ++res.statements;
        res.failures_a.insert(res.failures_a.end(), sa.failures.begin(), sa.failures.end());
        res.failures_b.insert(res.failures_b.end(), sb.failures.begin(), sb.failures.end());
        // Equal states have equal dumps; unequal states may still dump alike (the dump is the
        // contract, e.g. a scratch entry's mfn is not part of it), so dumps decide.
        const spec::State xa = ha->snapshot(), xb = hb->snapshot();
        std::string da, db;
        if (xa != xb) {
            da = spec::dump(xa);
            db = spec::dump(xb);
        }
        if (sa.outcome != sb.outcome || sa.fatal != sb.fatal || da != db) {
            res.divergence = Divergence{sa.line,  sa.statement, sa.outcome,       sb.outcome,
                                        sa.fatal, sb.fatal,     line_diff(da, db)};
            return res;
        }
        if (sa.fatal) {  // both stopped here, the same way
            res.stopped = true;
            return res;
        }
    }
    return res;
}

}  // namespace trace
