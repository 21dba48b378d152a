// One result line for bench/provider: the client's own report plus the stand-in's /stats.
//   node summarize.mjs LABEL CLIENT_JSON STATS_JSON
const [label, clientJson, statsJson] = process.argv.slice(2);
const c = JSON.parse(clientJson), s = JSON.parse(statsJson);
const window_s = Math.max(1e-9, (s.last_ok_s ?? 0) - (s.first_admitted_s ?? 0));
const tpm_used = (s.ok_tokens ?? 0) / (window_s / 60);
const requests = s.requests ?? 0, r429 = s.status_429_rate_limit ?? 0;
const faults = Object.entries(s).filter(([k]) => k.startsWith("fault_")).map(([k, v]) => `${k.slice(6)}=${v}`).join(",");
const row = {
  client: label, rows: c.rows, failed: c.failed, seconds: +c.seconds.toFixed(2), rows_per_s: +(c.rows / c.seconds).toFixed(1),
  tpm_used: Math.round(tpm_used), tpm_limit: s.tpm_limit, tpm_share: s.tpm_limit ? +(tpm_used / s.tpm_limit).toFixed(3) : null,
  requests, r429, r429_pct: requests ? +(100 * r429 / requests).toFixed(2) : 0, cpu_s: c.cpu_s != null ? +c.cpu_s.toFixed(2) : null,
  faults: faults || "none",
};
console.log(JSON.stringify(row));
