#!/usr/bin/env bash
# Regenerates gateway/web/vendor/three/ from npm's `three` (the version below): the ES module build, the loaders
# the quote page uses (STL, glTF with Draco and meshopt), the orbit controls, and the licence. The addons import
# the bare specifier 'three'; it is rewritten to a relative path so the page needs no import map (and its
# Content-Security-Policy no inline script). The files are embedded in the binary (gateway/src/page.rs).
set -euo pipefail
version=0.187.0
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$repo/gateway/web/vendor/three"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "three@$version" --silent >/dev/null && tar xzf "three-$version.tgz")
src="$work/package"
rm -rf "$out"
mkdir -p "$out/addons/loaders" "$out/addons/controls" "$out/addons/utils" "$out/addons/libs/draco" "$out/addons/environments"
cp "$src/LICENSE" "$out/LICENSE"
cp "$src/build/three.module.js" "$src/build/three.core.js" "$out/"
for f in loaders/STLLoader.js loaders/GLTFLoader.js loaders/DRACOLoader.js controls/OrbitControls.js \
  utils/BufferGeometryUtils.js utils/SkeletonUtils.js libs/meshopt_decoder.module.js environments/RoomEnvironment.js; do
  cp "$src/examples/jsm/$f" "$out/addons/$f"
done
cp "$src/examples/jsm/libs/draco/gltf/draco_decoder.wasm" "$src/examples/jsm/libs/draco/gltf/draco_wasm_wrapper.js" \
  "$out/addons/libs/draco/"
# addons/<dir>/<file>.js import 'three' from two levels down.
sed -i "s#from 'three';#from '../../three.module.js';#" "$out"/addons/*/*.js
echo "three $version" > "$out/VERSION"
echo "vendored three $version into $out: $(du -sh "$out" | cut -f1)"
