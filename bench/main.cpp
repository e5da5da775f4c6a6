// bench/main.cpp: build/pviommu_bench [--quick] [--smoke] [--csv=FILE] [--svg=FILE] [--json=FILE]
// [--seed=N] [--max-size=N] [--reps=N] [--budget-ms=MS] [--workloads=PREFIXES]
// [--contenders=NAMES]; the workloads of `pviommu bench` without its verification-tools section.
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "bench/bench.h"

int main(int argc, char** argv) {
    bench::BenchOptions o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto val = [&](const char* p) { return a.substr(std::strlen(p)); };
        if (a == "--quick")
            o.quick = true;
        else if (a == "--smoke")
            o.smoke = true;
        else if (a.rfind("--csv=", 0) == 0)
            o.csv = val("--csv=");
        else if (a.rfind("--svg=", 0) == 0)
            o.svg = val("--svg=");
        else if (a.rfind("--json=", 0) == 0)
            o.json = val("--json=");
        else if (a.rfind("--budget-ms=", 0) == 0)
            o.budget_ms = std::strtod(val("--budget-ms=").c_str(), nullptr);
        else if (a.rfind("--seed=", 0) == 0)
            o.seed = std::strtoull(val("--seed=").c_str(), nullptr, 10);
        else if (a.rfind("--max-size=", 0) == 0)
            o.max_size = std::strtoull(val("--max-size=").c_str(), nullptr, 10);
        else if (a.rfind("--reps=", 0) == 0)
            o.reps = std::atoi(val("--reps=").c_str());
        else if (a.rfind("--workloads=", 0) == 0)
            o.workloads = val("--workloads=");
        else if (a.rfind("--contenders=", 0) == 0)
            o.contenders = val("--contenders=");
        else {
            std::cerr << "usage: pviommu_bench [--quick] [--smoke] [--csv=FILE] [--svg=FILE] "
                         "[--json=FILE] [--seed=N] [--max-size=N] [--reps=N] [--budget-ms=MS] "
                         "[--workloads=W1,W3] [--contenders=impl,tbb]\n";
            return 2;
        }
    }
    return bench::run_bench(o, std::cout);
}
