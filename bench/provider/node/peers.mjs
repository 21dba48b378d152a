// Peer clients for bench/provider, pointed at the same stand-in as lens-embed:
//   node peers.mjs openai|langchain BASE_URL JSONL [--batch 256] [--concurrency 16] [--dimensions N] [--model M]
// Prints one JSON line: rows, failed rows, seconds, rows/s, CPU seconds of this process.
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import { OpenAIEmbeddings } from "@langchain/openai";

const [which, baseURL, jsonl, ...rest] = process.argv.slice(2);
const opt = { batch: 256, concurrency: 16, dimensions: undefined, model: "text-embedding-3-small", retries: 6 };
for (let i = 0; i < rest.length; i += 2) opt[rest[i].replace(/^--/, "")] = rest[i + 1];
const batch = Number(opt.batch), concurrency = Number(opt.concurrency), retries = Number(opt.retries);
const dimensions = opt.dimensions ? Number(opt.dimensions) : undefined;
const texts = readFileSync(jsonl, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const apiKey = process.env.SUPERMIND_API_KEY;

const cpu0 = process.cpuUsage();
const t0 = performance.now();
let embedded = 0, failed = 0;

if (which === "openai") {
  // The official client: retries 429/5xx itself (honouring retry-after); we add a worker
  // pool of `concurrency` requests of `batch` inputs, as a careful user would.
  const client = new OpenAI({ apiKey, baseURL, maxRetries: retries, timeout: 120_000 });
  let next = 0;
  async function worker() {
    while (next < texts.length) {
      const start = next;
      next += batch;
      const input = texts.slice(start, start + batch);
      try {
        const r = await client.embeddings.create({ model: opt.model, input, ...(dimensions ? { dimensions } : {}) });
        embedded += r.data.length;
      } catch (e) {
        failed += input.length;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
} else if (which === "langchain") {
  // LangChain.js: embedDocuments batches and runs requests through its AsyncCaller
  // (maxConcurrency, maxRetries with exponential backoff).
  const emb = new OpenAIEmbeddings({
    model: opt.model, apiKey, batchSize: batch, maxConcurrency: concurrency, maxRetries: retries,
    configuration: { baseURL }, ...(dimensions ? { dimensions } : {}),
  });
  // Chunks of 10k texts: one failed request makes embedDocuments reject as a whole.
  for (let s = 0; s < texts.length; s += 10_000) {
    const part = texts.slice(s, s + 10_000);
    try {
      const v = await emb.embedDocuments(part);
      embedded += v.length;
    } catch (e) {
      failed += part.length;
    }
  }
} else {
  console.error("usage: node peers.mjs openai|langchain BASE_URL JSONL [...]");
  process.exit(2);
}
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({ client: which, rows: embedded, failed, seconds, rows_per_s: embedded / seconds,
  cpu_s: (cpu.user + cpu.system) / 1e6 }));
