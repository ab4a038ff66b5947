#!/usr/bin/env bash
# Times `assay analyze` against admesh and trimesh on the same generated files, in one run, and prints a
# Markdown table of medians, peak memory and ratios. Usage: benches/compare.sh [RUNS]   (default 10 runs)
#
# Files (bench-out/, not committed): a 2,000,000-triangle closed ring band as binary STL (100 MB) and the same
# band as ASCII STL (about 415 MB). admesh and trimesh get fewer runs: they take seconds to minutes each.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
scripts/install-bench-tools.sh
cargo build --release --quiet --bin assay --example gen_ring -p assay -p models
out=bench-out
mkdir -p "$out"
bin=$out/ring_2m.stl
ascii=$out/ring_2m_ascii.stl
[ -f "$bin" ] || target/release/examples/gen_ring "$bin" 2000 500
[ -f "$ascii" ] || target/release/examples/gen_ring "$ascii" 2000 500 --ascii
cat > "$out/trimesh_measure.py" <<'PY'
import sys, trimesh
m = trimesh.load(sys.argv[1], force="mesh")
print(m.volume, m.area, m.is_watertight, m.is_winding_consistent, len(m.split(only_watertight=False)))
PY

# median wall seconds of a command over N runs (hyperfine), printed as a number
median() { local n=$1; shift; hyperfine -N -w 1 -r "$n" --export-json "$out/h.json" "$@" >/dev/null 2>&1
  python3 -c "import json;print('%.4f'%json.load(open('$out/h.json'))['results'][0]['median'])"; }
# peak resident memory in MB of one run
peak() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.0f", $1/1024}'; }

assay_bin=$(median "$runs" "target/release/assay analyze $bin")
assay_bin_mem=$(peak target/release/assay analyze "$bin")
assay_ascii=$(median "$runs" "target/release/assay analyze $ascii")
assay_ascii_mem=$(peak target/release/assay analyze "$ascii")
cat_bin=$(median "$runs" "cat $bin")
admesh_bin=$(median 3 "admesh $bin")
admesh_mem=$(peak admesh "$bin")
trimesh_bin=$(median 3 "python3 $out/trimesh_measure.py $bin")
trimesh_mem=$(peak python3 "$out/trimesh_measure.py" "$bin")
ascii_mb=$(python3 -c "import os;print(os.path.getsize('$ascii')/1e6)")

ratio() { python3 -c "print('%.1f' % ($1/$2))"; }
echo
echo "| file | tool | median wall (s) | peak memory (MB) | vs assay |"
echo "|---|---|---|---|---|"
echo "| 2M-triangle binary STL, 100 MB | \`cat > /dev/null\` | $cat_bin | | |"
echo "| 2M-triangle binary STL, 100 MB | assay analyze | $assay_bin | $assay_bin_mem | 1 |"
echo "| 2M-triangle binary STL, 100 MB | admesh (default checks) | $admesh_bin | $admesh_mem | $(ratio "$admesh_bin" "$assay_bin")× slower |"
echo "| 2M-triangle binary STL, 100 MB | trimesh (volume, area, watertight, winding, bodies) | $trimesh_bin | $trimesh_mem | $(ratio "$trimesh_bin" "$assay_bin")× slower |"
echo "| 2M-triangle ASCII STL, $(printf %.0f "$ascii_mb") MB | assay analyze | $assay_ascii | $assay_ascii_mem | $(python3 -c "print('%.0f MB/s' % ($ascii_mb/$assay_ascii))") |"
echo
echo "assay runs: $runs; admesh and trimesh: 3 each. $(nproc) cores, $(date -u +%Y-%m-%d)."
