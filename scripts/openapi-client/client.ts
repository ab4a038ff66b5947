// A shop's client of assay, written against the types openapi-typescript generates from /openapi.json.
// `tsc --strict` must accept it, and every `@ts-expect-error` line must be an error: the price is a string
// (decimal money), the volume a number, and a job's status tells which fields it has.
import type { components } from "./assay";

type Schemas = components["schemas"];
type QuoteView = Schemas["QuoteView"];
type Done = Extract<QuoteView, { status: "done" }>;
type Failed = Extract<QuoteView, { status: "failed" }>;

export function firstTotal(job: QuoteView): string | undefined {
  if (job.status !== "done") {
    // @ts-expect-error: a job that is not done has no quotes
    return job.quotes[0].total;
  }
  const total: string = job.quotes[0].total;
  const volume: number = job.geometry.volume_mm3;
  const total_ms: number = job.timings_ms.total;
  // @ts-expect-error: money is a decimal string, never a float
  const asNumber: number = job.quotes[0].total;
  // @ts-expect-error: the volume is a number
  const volumeText: string = job.geometry.volume_mm3;
  void [volume, total_ms, asNumber, volumeText];
  return total;
}

export function why(job: Failed): string {
  // A failed job always has its error.
  return `${job.error.code}: ${job.error.message}`;
}

export function weight(job: Done): string {
  return job.quotes.map((q: Schemas["Quote"]) => `${q.alloy}: ${q.metal_weight_g} g`).join(", ");
}

export function alloys(rules: Schemas["RulesView"]): string[] {
  return rules.alloys.map((a) => a.id);
}

// What a shop routes on: the solid volume, whether a person must look, and what was repaired.
export function review(job: Done): string | undefined {
  const solid: number = job.geometry.solid_volume_mm3;
  const metal: number = job.metal_volume_mm3;
  const welded: number = job.geometry.repairs.vertices_welded;
  const flagged: boolean = job.needs_review && job.geometry.needs_review;
  // @ts-expect-error: needs_review is a boolean, not a string
  const asText: string = job.needs_review;
  void [solid, metal, welded, asText];
  return flagged ? job.geometry.review.map((r) => `${r.code}: ${r.message}`).join("; ") : undefined;
}

// Castability: per alloy a verdict and the sentence that says where; the walls measured, when they were.
export function castability(job: Done): string[] {
  const thinnest: number | undefined = job.geometry.thickness?.min_wall_mm;
  const places: string[] = (job.geometry.thickness?.thin_regions ?? []).map(
    (r: Schemas["ThinRegion"]) => `${r.kind} ${r.wall_mm} mm at ${r.thinnest_at_mm.join(", ")}`,
  );
  // @ts-expect-error: a region is a wall or a wire, nothing else
  const kind: Schemas["ThinRegion"]["kind"] = "sheet";
  // @ts-expect-error: the thickness may be null (a model with no area)
  const always: number = job.geometry.thickness.min_wall_mm;
  void [thinnest, places, kind, always];
  return job.quotes.filter((q) => !q.castable).map((q) => q.castability);
}

// The webhook delivery of a job, when its tenant has a webhook: a status a shop can switch on exhaustively.
export function delivery(job: QuoteView): string {
  const w = job.webhook;
  if (!w) {
    return "no webhook";
  }
  const code: number | null | undefined = w.last_status_code;
  switch (w.status) {
    case "pending":
      return `pending after ${w.attempts} attempts`;
    case "delivered":
      return `delivered (${code})`;
    case "failed":
      return `failed: ${w.last_error ?? "?"}`;
  }
}

// @ts-expect-error: a delivery is pending, delivered or failed, nothing else
export const skipped: Schemas["DeliveryStatus"] = "skipped";
