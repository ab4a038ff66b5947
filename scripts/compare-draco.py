#!/usr/bin/env python3
"""Holds draco-core (the Rust decoder models uses) against Google's C++ Draco decoder (DracoPy, PyPI) on every
Draco stream in the project's and the shared test files: the same points in the same order and the same faces,
bit for bit, and the time each takes (best of 20). Installs DracoPy and numpy with pip when absent.

    scripts/compare-draco.py
"""
import json, os, struct, subprocess, sys, tempfile, time
from importlib.metadata import version

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import DracoPy, numpy as np
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "DracoPy", "numpy"])
    import DracoPy, numpy as np

files = [
    "models/tests/data/draco_Box_Draco.glb",
    "models/tests/data/compressed/ring_gltf_pipeline_draco.glb",
    "../shared/testdata/meshes/gltf/2CylinderEngine-Draco/2CylinderEngine.gltf",
]

def streams(path):
    path = os.path.join(root, path)
    if not os.path.exists(path):
        return
    raw = open(path, "rb").read()
    if raw[:4] == b"glTF":
        n = struct.unpack("<I", raw[12:16])[0]
        doc, buffers = json.loads(raw[20:20 + n]), [raw[20 + n + 8:]]
    else:
        doc = json.loads(raw)
        buffers = [open(os.path.join(os.path.dirname(path), b["uri"]), "rb").read() for b in doc["buffers"]]
    for m, mesh in enumerate(doc["meshes"]):
        for p, prim in enumerate(mesh["primitives"]):
            ext = prim.get("extensions", {}).get("KHR_draco_mesh_compression")
            if ext:
                view = doc["bufferViews"][ext["bufferView"]]
                at = view.get("byteOffset", 0)
                yield f"{os.path.basename(path)} mesh {m} primitive {p}", buffers[view["buffer"]][at:at + view["byteLength"]]

with tempfile.TemporaryDirectory() as tmp:
    named = []
    for f in files:
        for name, data in streams(f):
            path = os.path.join(tmp, f"{len(named)}.drc")
            open(path, "wb").write(data)
            named.append((name, path, data))
    subprocess.check_call(["cargo", "build", "-q", "--release", "-p", "models", "--example", "draco_decode"], cwd=root)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    out = subprocess.check_output([os.path.join(target, "release/examples/draco_decode")] + [p for _, p, _ in named], text=True)
    rust_us = {line.split("\t")[0]: float(line.split("\t")[3]) for line in out.splitlines()}
    same, rust_total, cpp_total = 0, 0.0, 0.0
    for name, path, data in named:
        best = float("inf")
        for _ in range(20):
            start = time.perf_counter()
            mesh = DracoPy.decode(data)
            best = min(best, time.perf_counter() - start)
        points = np.frombuffer(open(path + ".points", "rb").read(), dtype="<f4").reshape(-1, 3)
        faces = np.frombuffer(open(path + ".faces", "rb").read(), dtype="<u4").reshape(-1, 3)
        cpp_points = np.asarray(mesh.points, dtype="<f4").reshape(-1, 3)
        cpp_faces = np.asarray(mesh.faces, dtype="<u4").reshape(-1, 3)
        ok = points.shape == cpp_points.shape and np.array_equal(points, cpp_points) and np.array_equal(faces, cpp_faces)
        same += ok
        rust_total += rust_us[path]
        cpp_total += best * 1e6
        if not ok:
            print(f"DIFFERENT {name}: {len(points)} vs {len(cpp_points)} points, {len(faces)} vs {len(cpp_faces)} faces")
    print(f"{same} of {len(named)} Draco streams decode to the same points and faces, bit for bit")
    print(f"decode time, sum of best-of-20: draco-core {rust_total / 1000:.2f} ms, Google Draco (DracoPy {version('DracoPy')}, its time includes the Python call) {cpp_total / 1000:.2f} ms")
    sys.exit(0 if same == len(named) else 1)
