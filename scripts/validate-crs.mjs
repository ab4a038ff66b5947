// Checks the custom resources in rendered manifests against their own CRD schemas: KEDA's ScaledObject and the
// Prometheus Operator's ServiceMonitor, PodMonitor and PrometheusRule, with the kubernetes-models packages
// (@kubernetes-models/keda, @kubernetes-models/prometheus-operator, generated from those projects' CRDs).
// Usage: node validate-crs.mjs FILE... (multi-document YAML); exits 1 on the first invalid object, 2 on a kind
// it has no schema for. Run by scripts/check-manifests.sh, which installs the packages.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

// The packages live in ASSAY_NPM_K8S (a cache outside the repository), imported through their own `exports`.
const from = async (name) => {
  const m = await import(pathToFileURL(`${process.env.ASSAY_NPM_K8S}/node_modules/${name}`).href);
  return m.default ?? m; // CommonJS builds come as the default export
};
const yaml = createRequire(`${process.env.ASSAY_NPM_K8S}/package.json`)("js-yaml");
const keda = await from("@kubernetes-models/keda/keda.sh/v1alpha1/index.js");
const monitoring = await from("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js");
const models = { "keda.sh/v1alpha1": keda, "monitoring.coreos.com/v1": monitoring };

let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (!doc || !(doc.apiVersion in models)) continue;
    const Model = models[doc.apiVersion][doc.kind];
    if (!Model) {
      console.error(`${file}: no schema for ${doc.apiVersion} ${doc.kind}`);
      process.exit(2);
    }
    try {
      new Model(doc).validate();
    } catch (e) {
      console.error(`${file}: ${doc.kind}/${doc.metadata?.name} is invalid: ${e.message}`);
      process.exit(1);
    }
    console.log(`${file}: ${doc.kind}/${doc.metadata.name} valid against ${doc.apiVersion}'s CRD schema`);
    checked++;
  }
}
console.log(`${checked} custom resources valid`);
