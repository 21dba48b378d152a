// Measures tiktoken builds from npm on the corpus written by bench_tokenizer (NUL-separated
// documents), single thread, best of N runs, and prints ratios against lens_tokenizer.
// Usage: node bench.mjs CORPUS LENS_RESULTS.json [RUNS]
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const [corpusPath, lensPath, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 2);
const raw = readFileSync(corpusPath);
const docs = [];
for (let start = 0, i = 0; i < raw.length; i++) {
  if (raw[i] === 0) { docs.push(raw.toString("utf8", start, i)); start = i + 1; }
}
const bytes = raw.length - docs.length;
const lens = JSON.parse(readFileSync(lensPath, "utf8"));

const fnv = (h, ids) => { for (const id of ids) h = Math.imul(h ^ id, 16777619) >>> 0; return h; };

// Wall time and process CPU time (user + system, all threads: includes node's GC and, for
// the async binding, its worker thread). The machines are shared, so both are reported.
async function measure(encodeDoc) {
  let bestWall = Infinity, bestCpu = Infinity, tokens = 0, hash = 0;
  for (let r = 0; r < runs; r++) {
    const all = new Array(docs.length);
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < docs.length; i++) all[i] = await encodeDoc(docs[i]);
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    bestWall = Math.min(bestWall, wall);
    bestCpu = Math.min(bestCpu, (c.user + c.system) / 1e6);
    tokens = 0; hash = 2166136261;
    for (const ids of all) { tokens += ids.length; hash = fnv(hash, ids); }
  }
  return { mbps: bytes / 1e6 / bestWall, cpuMbps: bytes / 1e6 / bestCpu, tokens,
           hash: hash.toString(16).padStart(8, "0") };
}

// Each peer: name -> encoding -> function(text) returning ids (special-token text as text).
const peers = [];
{
  const { get_encoding } = await import("tiktoken");
  peers.push(["tiktoken (npm WASM)", (enc) => { const e = get_encoding(enc); return (t) => e.encode_ordinary(t); }]);
}
try {
  const rs = require("tiktoken-rs-node-linux-x64-gnu");
  // The corpus has no special-token text, so encode() equals encode_ordinary here.
  peers.push(["tiktoken-rs-node (native Rust)", (enc) => { const e = rs.getEncoding(enc); return (t) => e.encode(t); }]);
} catch (e) { console.log(`tiktoken-rs-node unavailable: ${e.message}`); }
try {
  // The platform package holds the napi binary itself; the wrapper package only picks it.
  const any = require("@anysphere/tiktoken-node-linux-x64-gnu");
  const tok = any.getTokenizer();
  const which = { cl100k_base: any.SupportedEncoding.Cl100k, o200k_base: any.SupportedEncoding.O200k };
  // Its calls run on a worker thread and return promises; awaited one by one (one thread busy).
  peers.push(["@anysphere/tiktoken-node (native Rust, async)", (enc) => (t) =>
    tok.encode(t, which[enc], any.SpecialTokenAction.NormalText, {})]);
} catch (e) { console.log(`@anysphere/tiktoken-node unavailable: ${e.message}`); }
{
  const { getEncoding } = await import("js-tiktoken");
  peers.push(["js-tiktoken (pure JS)", (enc) => { const e = getEncoding(enc); return (t) => e.encode(t, [], []); }]);
}

console.log(`corpus: ${docs.length} documents, ${(bytes / 1e6).toFixed(2)} MB, best of ${runs} runs, single thread`);
let allSame = true;
const f1 = (x) => x.toFixed(1).padStart(6);
for (const enc of ["cl100k_base", "o200k_base"]) {
  const L = lens[enc];
  console.log(`\n${enc}: lens_tokenizer encode ${f1(L.encode_mbps)} MB/s wall, ${f1(L.encode_cpu_mbps)} MB/s cpu; ` +
              `count ${L.count_mbps.toFixed(1)} / ${L.count_cpu_mbps.toFixed(1)}; load ${L.load_ms.toFixed(1)} ms ` +
              `(cpu ${L.load_cpu_ms.toFixed(1)}); ${L.tokens} tokens, hash ${L.hash}`);
  let fastest = null;
  for (const [name, make] of peers) {
    let r;
    try { r = await measure(make(enc)); } catch (e) { console.log(`  ${name}: failed: ${e.message}`); continue; }
    const same = r.tokens === L.tokens && r.hash === L.hash;
    allSame &&= same;
    if (!fastest || r.cpuMbps > fastest.cpuMbps) fastest = { name, ...r };
    console.log(`  ${name.padEnd(46)} ${f1(r.mbps)} MB/s wall ${f1(r.cpuMbps)} MB/s cpu | ` +
                `lens/peer ${(L.encode_mbps / r.mbps).toFixed(2)}x wall ${(L.encode_cpu_mbps / r.cpuMbps).toFixed(2)}x cpu | ` +
                `ids ${same ? "identical" : `DIFFER (${r.tokens} tokens, hash ${r.hash})`}`);
  }
  if (fastest) {
    console.log(`  => lens encode vs fastest tiktoken (${fastest.name}): ${(L.encode_mbps / fastest.mbps).toFixed(2)}x wall, ` +
                `${(L.encode_cpu_mbps / fastest.cpuMbps).toFixed(2)}x cpu; count(): ${(L.count_cpu_mbps / fastest.cpuMbps).toFixed(2)}x cpu`);
  }
}
console.log(allSame ? "\nall ids identical" : "\nIDS DIFFER");
process.exit(allSame ? 0 : 1);
