#!/usr/bin/env bash
# The README's castability table: every jewelry mesh in ../shared/testdata/meshes/jewelry priced in one alloy per
# metal with the shipped rules, its walls, and the verdict per metal. For each model's thinnest place, trimesh
# (installed with pip when missing) casts its own ray from that point along the inward normal of the nearest face,
# as an outside check of the distance (to the first face it leaves through). Usage: scripts/castability-table.sh [ASSAY_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/assay}
dir=${MESHES:-../shared/testdata/meshes/jewelry}
[ -x "$bin" ] || cargo build --release --quiet --bin assay
python3 -c "import trimesh, scipy, rtree" 2>/dev/null || python3 -m pip install -q trimesh scipy rtree
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bin" batch "$dir" --rules rules --alloy 18k-yellow --alloy sterling-925 --alloy pt950 --alloy pd950 \
  --out "$out/prices.json" >/dev/null 2>&1 || true
python3 - "$out/prices.json" "$dir" <<'PY'
import json, os, sys
import numpy as np, trimesh
doc = json.load(open(sys.argv[1]))
print("| model | triangles | min wall (mm) | trimesh ray there (mm) | 5 % / 50 % of the surface under (mm) | thinnest wall / wire (mm) | places under 1.5 mm | gold | silver | platinum | palladium |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for m in sorted(doc["models"], key=lambda m: m["file"]):
    name = os.path.basename(m["file"])
    if "error" in m:
        print(f"| {name} | | {m['error']['code']} | | | | | | | | |")
        continue
    g = m["geometry"]; t = g["thickness"]
    # The metal's walls: one region list per model is enough for the outside check.
    place = t["thin_regions"][0]["thinnest_at_mm"] if t["thin_regions"] else None
    check = ""
    if place is not None:
        mesh = trimesh.load(m["file"], force="mesh")
        if g["units"] == "m":
            mesh.apply_scale(1000.0)
        p = np.array([place]); _, _, tri = trimesh.proximity.closest_point(mesh, p)
        n = mesh.face_normals[tri[0]]
        locs, _, faces = mesh.ray.intersects_location(p - n * 1e-4, -n[None, :])
        # Where the ray leaves the solid: a face turned along the ray (as assay measures).
        d = sorted(np.linalg.norm(l - p[0]) for l, f in zip(locs, faces) if mesh.face_normals[f] @ -n > 0)
        check = f"{d[0]:.3f}" if d else "no exit"
    fmt = lambda v: "–" if v is None else f"{v:.2f}"
    verdict = {q["alloy"]: ("castable" if q["castable"] else "**no**") for q in m["quotes"]}
    print(f"| {name} | {g['triangles']} | {t['min_wall_mm']:.3f} | {check} | {t['p5_mm']:.2f} / {t['p50_mm']:.2f} | "
          f"{fmt(t['thinnest_wall_mm'])} / {fmt(t['thinnest_wire_mm'])} | {t['thin_region_count']} | "
          f"{verdict['18k-yellow']} | {verdict['sterling-925']} | {verdict['pt950']} | {verdict['pd950']} |")
PY
