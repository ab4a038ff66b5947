#!/usr/bin/env bash
# Regenerates models/tests/data/compressed/: the sample solitaire ring written by the tools shops compress glTF
# with, so the tests can hold each against its source. Tests never need npm; only this script does.
#   gltfpack (meshoptimizer's CLI):  -cc (meshopt + 14-bit quantized positions), and -cc -vpf (positions as
#                                     floats through meshopt's EXPONENTIAL filter)
#   gltf-pipeline (Cesium):          -d (Draco, its default 11-bit positions)
#   @gltf-transform/cli:             quantize (KHR_mesh_quantization, its default 14-bit positions), and
#                                     copy to .gltf + .bin (the "glTF Separate" layout designers export)
# The npm packages go to ~/.cache/assay-npm-gltf (installed when absent); versions used are printed and recorded
# in the folder's SOURCES.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$HOME/.cache/assay-npm-gltf"
if [ ! -x "$tools/node_modules/.bin/gltfpack" ] || [ ! -x "$tools/node_modules/.bin/gltf-pipeline" ] \
  || [ ! -x "$tools/node_modules/.bin/gltf-transform" ]; then
  mkdir -p "$tools"
  (cd "$tools" && npm install --no-audit --no-fund gltfpack gltf-pipeline @gltf-transform/cli >/dev/null)
fi
bin="$tools/node_modules/.bin"
src=samples/solitaire_ring.glb
out=models/tests/data/compressed
rm -rf "$out" && mkdir -p "$out"
"$bin/gltfpack" -i "$src" -o "$out/ring_gltfpack_cc.glb" -cc >/dev/null
"$bin/gltfpack" -i "$src" -o "$out/ring_gltfpack_cc_vpf.glb" -cc -vpf >/dev/null
"$bin/gltf-pipeline" -i "$src" -o "$out/ring_gltf_pipeline_draco.glb" -d >/dev/null
"$bin/gltf-transform" quantize "$src" "$out/ring_gltf_transform_quantize.glb" >/dev/null
mkdir -p "$out/separate"
"$bin/gltf-transform" copy "$src" "$out/separate/ring.gltf" >/dev/null
version() { node -p "require('$tools/node_modules/$1/package.json').version"; }
{
  echo "# Made by scripts/make-compressed-gltf.sh from samples/solitaire_ring.glb (this project's own sample)."
  echo "# gltfpack $(version gltfpack), gltf-pipeline $(version gltf-pipeline), @gltf-transform/cli $(version @gltf-transform/cli)"
  echo "ring_gltfpack_cc.glb | gltfpack -cc | EXT_meshopt_compression + KHR_mesh_quantization"
  echo "ring_gltfpack_cc_vpf.glb | gltfpack -cc -vpf | EXT_meshopt_compression, EXPONENTIAL filter on positions"
  echo "ring_gltf_pipeline_draco.glb | gltf-pipeline -d | KHR_draco_mesh_compression"
  echo "ring_gltf_transform_quantize.glb | gltf-transform quantize | KHR_mesh_quantization"
  echo "separate/ring.gltf, separate/ring.bin | gltf-transform copy | external buffer"
} >"$out/SOURCES.txt"
ls -l "$out" "$out/separate"
