#!/usr/bin/env bash
# Times `assay analyze` against admesh and trimesh on the same generated files, in one run, and prints a
# Markdown table of medians, peak memory and ratios. Usage: benches/compare.sh [RUNS]   (default 10 runs)
#
# Files (bench-out/, not committed), all from models/examples/gen_ring.rs:
# - a 2,000,000-triangle closed ring band as binary STL (100 MB) in three orders of the same triangles: as the
#   band is built (`mesh`), first triangle of every quad then the second (`halves`, as numpy writes it), and
#   shuffled; and the band as ASCII STL (about 415 MB);
# - 200 bands of 5,000 triangles each 2 mm from the last (1,000,000 triangles, every band overlapping its
#   neighbours): the solid needs the union; its time is set against manifold3d's batch union of the same shells.
# - a 200,000-triangle band, for what the wall-thickness pass costs on a model of that size.
# admesh, trimesh and manifold3d get fewer runs: they take seconds to minutes each.
# BASE=/path/to/assay adds rows for another build (an earlier commit's, built in a worktree) on the band files,
# timed in the same run: what a change costs.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
scripts/install-bench-tools.sh
python3 -c "import manifold3d" 2>/dev/null || { echo "installing manifold3d (pip)"; python3 -m pip install -q manifold3d; }
cargo build --release --quiet --bin assay --example gen_ring -p assay -p models
out=bench-out
mkdir -p "$out"
for order in mesh halves shuffled; do
  [ -f "$out/ring_2m_$order.stl" ] || target/release/examples/gen_ring "$out/ring_2m_$order.stl" 2000 500 --order "$order"
done
bin=$out/ring_2m_mesh.stl
ascii=$out/ring_2m_ascii.stl
shells=$out/shells_200.stl
[ -f "$ascii" ] || target/release/examples/gen_ring "$ascii" 2000 500 --ascii
[ -f "$shells" ] || target/release/examples/gen_ring "$shells" 100 25 --shells 200
band200k=$out/ring_200k.stl
[ -f "$band200k" ] || target/release/examples/gen_ring "$band200k" 400 250
cat > "$out/trimesh_measure.py" <<'PY'
import sys, trimesh
m = trimesh.load(sys.argv[1], force="mesh")
print(m.volume, m.area, m.is_watertight, m.is_winding_consistent, len(m.split(only_watertight=False)))
PY
cat > "$out/manifold_union.py" <<'PY'
# The reference union: each shell (trimesh's split) a Manifold of f64 vertices, inward ones inverted first.
import sys, trimesh, manifold3d as m3, numpy as np
m = trimesh.load(sys.argv[1], force="mesh")
m.merge_vertices()
parts = []
for b in m.split(only_watertight=False):
    if b.volume < 0:
        b.invert()
    parts.append(m3.Manifold(m3.Mesh64(vert_properties=np.asarray(b.vertices, dtype=np.float64),
                                       tri_verts=np.asarray(b.faces, dtype=np.uint64))))
print(repr(m3.Manifold.batch_boolean(parts, m3.OpType.Add).volume()))
PY

# median wall seconds of a command over N runs (hyperfine), printed as a number
median() { local n=$1; shift; hyperfine -N -w 1 -r "$n" --export-json "$out/h.json" "$@" >/dev/null 2>&1
  python3 -c "import json;print('%.4f'%json.load(open('$out/h.json'))['results'][0]['median'])"; }
# peak resident memory in MB of one run
peak() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.0f", $1/1024}'; }
ratio() { python3 -c "print('%.1f' % ($1/$2))"; }
solid() { target/release/assay analyze --json "$1" | python3 -c "import json,sys;print(repr(json.load(sys.stdin)['solid_volume_mm3']))"; }

declare -A t mem adm base_mem
for order in mesh halves shuffled; do
  f=$out/ring_2m_$order.stl
  t[$order]=$(median "$runs" "target/release/assay analyze $f")
  mem[$order]=$(peak target/release/assay analyze "$f")
  adm[$order]=$(median 3 "admesh $f")
done
admesh_mem=$(peak admesh "$bin")
t200k=$(median "$runs" "target/release/assay analyze $band200k")
declare -A base
if [ -n "${BASE:-}" ]; then
  for order in mesh halves shuffled; do
    base[$order]=$(median "$runs" "$BASE analyze $out/ring_2m_$order.stl")
    base_mem[$order]=$(peak "$BASE" analyze "$out/ring_2m_$order.stl")
  done
  base200k=$(median "$runs" "$BASE analyze $band200k")
fi
ms() { python3 -c "print('%+.0f ms' % (1000*($1-$2)))"; }
cat_bin=$(median "$runs" "cat $bin")
trimesh_bin=$(median 3 "python3 $out/trimesh_measure.py $bin")
trimesh_mem=$(peak python3 "$out/trimesh_measure.py" "$bin")
assay_ascii=$(median "$runs" "target/release/assay analyze $ascii")
assay_ascii_mem=$(peak target/release/assay analyze "$ascii")
ascii_mb=$(python3 -c "import os;print(os.path.getsize('$ascii')/1e6)")
shells_assay=$(median 3 "target/release/assay analyze $shells")
shells_mem=$(peak target/release/assay analyze "$shells")
shells_manifold=$(median 3 "python3 $out/manifold_union.py $shells")
shells_manifold_mem=$(peak python3 "$out/manifold_union.py" "$shells")
shells_ours=$(solid "$shells")
shells_ref=$(python3 "$out/manifold_union.py" "$shells")

echo
echo "| file | tool | median wall (s) | peak memory (MB) | vs assay |"
echo "|---|---|---|---|---|"
echo "| 2M-triangle binary STL, 100 MB | \`cat > /dev/null\` | $cat_bin | | |"
for order in mesh halves shuffled; do
  echo "| 2M-triangle band, $order order | assay analyze (solid volume included) | ${t[$order]} | ${mem[$order]} | 1 (×$(ratio "${t[$order]}" "${t[mesh]}") the mesh order) |"
  echo "| 2M-triangle band, $order order | admesh (default checks) | ${adm[$order]} | $admesh_mem | $(ratio "${adm[$order]}" "${t[$order]}")× slower |"
done
if [ -n "${BASE:-}" ]; then
  for order in mesh halves shuffled; do
    echo "| 2M-triangle band, $order order | \`BASE\` analyze (the build compared against) | ${base[$order]} | ${base_mem[$order]} | assay $(ms "${t[$order]}" "${base[$order]}") |"
  done
  echo "| 200k-triangle band | \`BASE\` analyze | $base200k | | assay $(ms "$t200k" "$base200k") |"
fi
echo "| 200k-triangle band | assay analyze | $t200k | | |"
echo "| 2M-triangle band, mesh order | trimesh (volume, area, watertight, winding, bodies) | $trimesh_bin | $trimesh_mem | $(ratio "$trimesh_bin" "${t[mesh]}")× slower |"
echo "| 2M-triangle ASCII STL, $(printf %.0f "$ascii_mb") MB | assay analyze | $assay_ascii | $assay_ascii_mem | $(python3 -c "print('%.0f MB/s' % ($ascii_mb/$assay_ascii))") |"
echo "| 200 overlapping bands, 1M triangles | assay analyze (union included) | $shells_assay | $shells_mem | 1 |"
echo "| 200 overlapping bands, 1M triangles | manifold3d batch union (Python, with trimesh's split) | $shells_manifold | $shells_manifold_mem | $(ratio "$shells_manifold" "$shells_assay")× |"
echo
echo "Solid volume of the 200 bands: assay $shells_ours mm³, manifold3d $shells_ref mm³."
echo "assay runs: $runs; admesh, trimesh, manifold3d and the 200 bands: 3 each. $(nproc) cores, $(date -u +%Y-%m-%d)."
