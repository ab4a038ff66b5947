// The quote page: the customer's model shown in 3D from the file itself, submitted to the API of the service
// that served this page (never another origin), the job followed over its WebSocket (polling if the socket
// fails), and the prices, castability and repairs shown in words.
import * as THREE from "/assets/three/three.module.js";
import { OrbitControls } from "/assets/three/addons/controls/OrbitControls.js";
import { STLLoader } from "/assets/three/addons/loaders/STLLoader.js";
import { GLTFLoader } from "/assets/three/addons/loaders/GLTFLoader.js";
import { DRACOLoader } from "/assets/three/addons/loaders/DRACOLoader.js";
import { MeshoptDecoder } from "/assets/three/addons/libs/meshopt_decoder.module.js";
import { RoomEnvironment } from "/assets/three/addons/environments/RoomEnvironment.js";

const $ = (id) => document.getElementById(id);
const session = new URLSearchParams(location.search).get("session");
const auth = session ? { Authorization: `Bearer ${session}` } : {};
let currency = "";
let chosen = null;

function problem(text) {
  const box = $("problem");
  box.textContent = text;
  box.hidden = !text;
}

// An API error as a sentence for a person: the service's own message, which says what was wrong and what is
// allowed; an expired or wrong session in plain words.
async function explain(response) {
  if (response.status === 401) {
    return session
      ? "This quote link has expired or is not valid. Please ask the shop for a new one."
      : "This page needs a quote link from the shop.";
  }
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) {
      return body.error.message.charAt(0).toUpperCase() + body.error.message.slice(1) + ".";
    }
  } catch (_) {
    // not JSON: fall through
  }
  return `The service could not take the request (HTTP ${response.status}). Please try again in a moment.`;
}

function money(amount) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount);
  } catch (_) {
    return `${amount} ${currency}`;
  }
}

async function loadRules() {
  const response = await fetch("/v1/rules", { headers: auth });
  if (!response.ok) {
    problem(await explain(response));
    $("alloys-loading").textContent = "The metals could not be loaded.";
    return;
  }
  const rules = await response.json();
  currency = rules.currency;
  const box = $("alloys");
  $("alloys-loading").remove();
  for (const alloy of rules.alloys) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.name = "alloy";
    input.value = alloy.id;
    input.checked = true;
    label.append(input, ` ${alloy.label}`);
    box.append(label);
  }
  $("submit").disabled = false;
}

// ---------------------------------------------------------------- the 3D view
const viewer = $("viewer");
let renderer = null;
let scene = null;
let camera = null;
let controls = null;
let shown = null;

function setUpView() {
  if (renderer) return true;
  try {
    renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  } catch (_) {
    viewer.querySelector(".hint").textContent = "This browser cannot show 3D; the price does not depend on it.";
    return false;
  }
  renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
  scene = new THREE.Scene();
  scene.background = new THREE.Color(0xffffff);
  // Metal needs something to reflect: a neutral room, generated here (no image to load).
  scene.environment = new THREE.PMREMGenerator(renderer).fromScene(new RoomEnvironment(), 0.04).texture;
  scene.add(new THREE.HemisphereLight(0xffffff, 0x8d8a80, 2.2));
  const key = new THREE.DirectionalLight(0xffffff, 2.5);
  key.position.set(1, 2, 3);
  scene.add(key);
  camera = new THREE.PerspectiveCamera(35, 1, 0.01, 10000);
  controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = true;
  controls.listenToKeyEvents(viewer);
  viewer.append(renderer.domElement);
  const resize = () => {
    const { clientWidth: w, clientHeight: h } = viewer;
    renderer.setSize(w, h, false);
    camera.aspect = w / Math.max(h, 1);
    camera.updateProjectionMatrix();
  };
  new ResizeObserver(resize).observe(viewer);
  resize();
  renderer.setAnimationLoop(() => {
    controls.update();
    renderer.render(scene, camera);
  });
  return true;
}

function show(object) {
  if (!setUpView()) return;
  if (shown) scene.remove(shown);
  shown = object;
  scene.add(object);
  const box = new THREE.Box3().setFromObject(object);
  const size = box.getSize(new THREE.Vector3()).length() || 1;
  const centre = box.getCenter(new THREE.Vector3());
  camera.near = size / 1000;
  camera.far = size * 100;
  camera.position.copy(centre).add(new THREE.Vector3(0.6, 0.5, 1).normalize().multiplyScalar(size * 1.6));
  camera.updateProjectionMatrix();
  controls.target.copy(centre);
  controls.update();
  const hint = $("viewer-empty");
  if (hint) hint.hidden = true;
}

const metal = new THREE.MeshStandardMaterial({ color: 0xd4af37, metalness: 0.6, roughness: 0.35 });

async function preview(file) {
  const bytes = await file.arrayBuffer();
  const name = file.name.toLowerCase();
  const head = new Uint8Array(bytes.slice(0, 4));
  const isGlb = head[0] === 0x67 && head[1] === 0x6c && head[2] === 0x54 && head[3] === 0x46;
  if (isGlb || name.endsWith(".glb") || name.endsWith(".gltf")) {
    const loader = new GLTFLoader();
    const draco = new DRACOLoader();
    draco.setDecoderPath("/assets/three/addons/libs/draco/");
    loader.setDRACOLoader(draco);
    loader.setMeshoptDecoder(MeshoptDecoder);
    const gltf = await loader.parseAsync(bytes, "");
    draco.dispose();
    show(gltf.scene);
  } else {
    const geometry = new STLLoader().parse(bytes);
    geometry.computeVertexNormals();
    show(new THREE.Mesh(geometry, metal));
  }
}

async function choose(file) {
  chosen = file;
  problem("");
  delete viewer.dataset.shown;
  try {
    await preview(file);
    viewer.dataset.shown = file.name;
  } catch (_) {
    viewer.dataset.shown = "";
    // The service decides whether it is a model; the view just says it cannot draw it.
    const hint = $("viewer-empty");
    if (hint) {
      hint.hidden = false;
      hint.textContent = "This file cannot be shown in 3D here; you can still ask for its price.";
    }
  }
}

$("model").addEventListener("change", (e) => {
  if (e.target.files.length) choose(e.target.files[0]);
});
for (const type of ["dragenter", "dragover"]) {
  document.addEventListener(type, (e) => {
    e.preventDefault();
    document.body.classList.add("dragging");
  });
}
for (const type of ["dragleave", "drop"]) {
  document.addEventListener(type, () => document.body.classList.remove("dragging"));
}
document.addEventListener("drop", (e) => {
  e.preventDefault();
  const file = e.dataTransfer && e.dataTransfer.files[0];
  if (file) {
    const input = $("model");
    input.files = e.dataTransfer.files;
    choose(file);
  }
});

// ---------------------------------------------------------------- the job
const STAGES = [
  ["queue_wait", "waiting"],
  ["fetch", "fetching"],
  ["parse", "reading the model"],
  ["analyze", "measuring"],
  ["price", "pricing"],
  ["total", "in all"],
];
const STATUS_TEXT = {
  queued: "Waiting for a free worker…",
  running: "Measuring and pricing your model…",
  done: "Done.",
  failed: "The model could not be priced.",
};

function seconds(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

function progress(job) {
  $("status").textContent = STATUS_TEXT[job.status] || job.status;
  $("status").dataset.status = job.status;
  const list = $("stages");
  list.replaceChildren();
  if (job.timings_ms) {
    for (const [key, label] of STAGES) {
      const li = document.createElement("li");
      li.dataset.stage = key;
      li.textContent = `${label}: ${seconds(job.timings_ms[key])}`;
      list.append(li);
    }
  }
}

function repairsOf(geometry) {
  const r = geometry.repairs || {};
  const said = [
    [r.vertices_welded, "corners that nearly met were joined"],
    [r.degenerate_triangles_dropped, "flat triangles were dropped"],
    [r.duplicate_triangles_dropped, "duplicate triangles were dropped"],
    [r.triangles_reoriented, "triangles were turned to face outward"],
    [r.holes_filled, "small holes were closed"],
    [r.shells_turned_outward, "inside-out parts were turned the right way"],
    [r.cavities, "hollow spaces inside were kept hollow"],
  ];
  return said.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`);
}

function render(job) {
  const section = $("result");
  const quotes = $("quotes");
  quotes.replaceChildren();
  if (job.status === "failed") {
    problem(job.error.message.charAt(0).toUpperCase() + job.error.message.slice(1) + ".");
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const g = job.geometry;
  $("summary").textContent =
    `${job.quantity} × piece of ${(job.metal_volume_mm3 / 1000).toFixed(3)} cm³ of metal, prices of ${job.prices_date}.`;
  for (const q of job.quotes) {
    const card = document.createElement("article");
    card.className = "quote";
    card.dataset.alloy = q.alloy;
    const h = document.createElement("h3");
    h.textContent = q.alloy_label;
    const total = document.createElement("p");
    total.className = "total";
    total.dataset.total = q.total;
    total.textContent = money(q.total);
    const weight = document.createElement("p");
    weight.textContent = `Metal weight: ${q.metal_weight_g} g per piece`;
    const cast = document.createElement("p");
    cast.className = q.castable ? "cast-ok" : "cast-no";
    cast.dataset.castable = String(q.castable);
    cast.textContent = q.castability.charAt(0).toUpperCase() + q.castability.slice(1) + ".";
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "How this price is made";
    const table = document.createElement("table");
    for (const line of q.lines) {
      const tr = table.insertRow();
      tr.insertCell().textContent = line.basis;
      const amount = tr.insertCell();
      amount.className = "amount";
      amount.textContent = money(line.amount);
    }
    details.append(summary, table);
    card.append(h, total, weight, cast, details);
    quotes.append(card);
  }
  const review = $("review");
  const reasons = [...(g.review || []).map((r) => r.message), ...(job.warnings || [])];
  review.hidden = !job.needs_review && reasons.length === 0;
  review.textContent = job.needs_review
    ? `A person at the shop will check this quote before it is confirmed. ${reasons.join(" ")}`
    : reasons.join(" ");
  const repairs = repairsOf(g);
  $("repairs-box").hidden = repairs.length === 0;
  $("repairs").replaceChildren(...repairs.map((t) => Object.assign(document.createElement("li"), { textContent: t })));
}

function follow(jobId) {
  let finished = false;
  const finish = (job) => {
    if (finished) return;
    finished = true;
    progress(job);
    render(job);
    $("submit").disabled = false;
  };
  const poll = async () => {
    while (!finished) {
      const response = await fetch(`/v1/quotes/${jobId}`, { headers: auth });
      if (!response.ok) {
        problem(await explain(response));
        $("submit").disabled = false;
        return;
      }
      const job = await response.json();
      if (job.status === "done" || job.status === "failed") return finish(job);
      progress(job);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const token = session ? `?access_token=${encodeURIComponent(session)}` : "";
  let socket;
  try {
    socket = new WebSocket(`${scheme}//${location.host}/v1/quotes/${jobId}/events${token}`);
  } catch (_) {
    poll();
    return;
  }
  socket.addEventListener("message", (e) => {
    const job = JSON.parse(e.data);
    if (job.status === "done" || job.status === "failed") finish(job);
    else progress(job);
  });
  socket.addEventListener("close", () => {
    if (!finished) poll();
  });
}

$("quote-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  problem("");
  if (!chosen) {
    problem("Please choose a model file first (STL, GLB or glTF).");
    $("model").focus();
    return;
  }
  const alloys = [...document.querySelectorAll("input[name=alloy]:checked")].map((i) => i.value);
  if (alloys.length === 0) {
    problem("Please choose at least one metal.");
    return;
  }
  const quantity = $("quantity").value || "1";
  const query = new URLSearchParams(alloys.map((a) => ["alloy", a]));
  query.set("quantity", quantity);
  $("submit").disabled = true;
  $("result").hidden = true;
  $("status").textContent = "Sending your model…";
  $("status").dataset.status = "sending";
  delete $("status").dataset.job;
  let response;
  try {
    response = await fetch(`/v1/quotes?${query}`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/octet-stream" },
      body: chosen,
    });
  } catch (_) {
    problem("The model could not be sent: the connection failed. Please try again.");
    $("submit").disabled = false;
    return;
  }
  if (response.status !== 202) {
    problem(await explain(response));
    $("status").textContent = "Nothing submitted.";
    $("submit").disabled = false;
    return;
  }
  const accepted = await response.json();
  $("status").textContent = STATUS_TEXT.queued;
  $("status").dataset.job = accepted.job_id;
  follow(accepted.job_id);
});

loadRules();
