#!/usr/bin/env bash
# bench/ab.sh BEFORE AFTER [RUNS] [WORKLOADS]: impl before and after a change, on this machine's
# noise. Runs the two pviommu_bench binaries alternately RUNS times (default 5), each a quick run
# (1e3..1e5 frames, 1/2/4 threads, medians of 3) of impl and xen-flat on WORKLOADS (default
# W1,W2,W3,W4-hot1), and prints per cell the median over the runs of impl's ns/op before and
# after, after/before, and impl/xen-flat in each (>1: impl faster). Build BEFORE with the same
# flags from a worktree of the old tree, e.g.:
#   git worktree add /tmp/before OLD && cmake -S /tmp/before -B /tmp/before/build-hv -G Ninja \
#     -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF && ninja -C /tmp/before/build-hv pviommu_bench
set -euo pipefail
before=$1 after=$2 runs=${3:-5} workloads=${4:-W1,W2,W3,W4-hot1}
dir=$(mktemp -d)
for r in $(seq "$runs"); do
    for v in before after; do
        bin=$before; [ "$v" = after ] && bin=$after
        "$bin" --quick --reps=3 --contenders=xen-flat --workloads="$workloads" \
               --csv="$dir/$v-$r.csv" > /dev/null
    done
done
python3 - "$dir" <<'PY'
import csv, glob, os, statistics as st, sys
from collections import defaultdict
d = defaultdict(list)
for f in glob.glob(os.path.join(sys.argv[1], '*.csv')):
    v = os.path.basename(f).split('-')[0]
    for r in csv.DictReader(open(f)):
        if r['contender'] not in ('impl', 'xen-flat') or not r.get('frames'):
            continue  # other contenders, and the CSV's other tables
        d[(r['workload'], int(r['frames']), int(r['threads']), r['contender'], v)].append(
            float(r['ns_op_median']))
m = lambda *k: st.median(d[k])
print(f"{'workload':12} {'frames':>7} {'thr':>3} {'impl before':>11} {'impl after':>10} "
      f"{'after/before':>12} {'impl/xf before':>14} {'impl/xf after':>13}")
per = defaultdict(list)
for w, fr, t in sorted({k[:3] for k in d}):
    ib, ia = m(w, fr, t, 'impl', 'before'), m(w, fr, t, 'impl', 'after')
    xb, xa = m(w, fr, t, 'xen-flat', 'before'), m(w, fr, t, 'xen-flat', 'after')
    per[(w, t)].append(ia / ib)
    print(f"{w:12} {fr:7} {t:3} {ib:11.1f} {ia:10.1f} {ia / ib:12.2f} {xb / ib:14.2f} {xa / ia:13.2f}")
print("\nafter/before by workload and threads (over the sizes): min-max")
for (w, t), v in sorted(per.items()):
    print(f"  {w:12} {t} thread(s): {min(v):.2f}-{max(v):.2f}")
PY
rm -rf "$dir"
