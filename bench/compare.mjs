#!/usr/bin/env node
// compare.mjs — hearth against llama.cpp (through node-llama-cpp's prebuilt CPU binaries) on the same
// GGUF files, with the same thread count, prompt length and generation length. Runs alternate
// between the two (and swap order every repeat) so that drift in machine load hits both alike; each
// run is a fresh process. Prints medians per model and the hearth/llama.cpp ratios as markdown.
//
// With --read-rate a plain read of the model's matrices (bench/weight-stream.c --read-only, a
// process of its own between engine runs, so neither engine is measured by its own probe) brackets
// every run, and each engine's decode is also given as a share of the read rate around its run:
// decode tok/s x bytes a token read / the mean of the reads before and after it.
//
// usage: node bench/compare.mjs MODEL.gguf... [--prompt N] [--gen N] [--repeat N] [--threads N]
//                               [--hearth PATH] [--read-rate] [--json]
// Install once with `npm ci --prefix bench` (see docs/benchmarks.md).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import os from "node:os";

const self = fileURLToPath(import.meta.url);
const here = path.dirname(self);

function parseArgs(argv) {
  const o = { models: [], prompt: 512, gen: 128, repeat: 3, threads: 0, hearth: null, json: false, worker: false, readRate: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (name) => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${name}: want a positive integer, got '${argv[i]}'`);
      return v;
    };
    if (a === "--prompt") o.prompt = num(a);
    else if (a === "--gen") o.gen = num(a);
    else if (a === "--repeat") o.repeat = num(a);
    else if (a === "--threads") o.threads = num(a);
    else if (a === "--hearth") o.hearth = argv[++i];
    else if (a === "--json") o.json = true;
    else if (a === "--read-rate") o.readRate = true;
    else if (a === "--llama-worker") o.worker = true;
    else if (a === "-h" || a === "--help") {
      console.log("usage: node bench/compare.mjs MODEL.gguf... [--prompt N] [--gen N] [--repeat N] [--threads N] [--hearth PATH] [--read-rate] [--json]");
      process.exit(0);
    } else if (a.startsWith("-")) throw new Error(`unknown flag '${a}'`);
    else o.models.push(a);
  }
  if (!o.models.length) throw new Error("at least one MODEL.gguf is required");
  return o;
}

// ---- llama.cpp side: one measurement in this (child) process, printed as JSON ----

async function llamaWorker(o) {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const model = o.models[0];
  // build: "never" — only the prebuilt binaries from npm; a source build would be a different llama.cpp.
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: o.threads });
  const t0 = performance.now();
  const m = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
  const ctx = await m.createContext({
    contextSize: o.prompt + o.gen + 16,
    batchSize: Math.min(512, o.prompt),
    threads: { ideal: o.threads, min: o.threads },
  });
  const loadMs = performance.now() - t0;
  const seq = ctx.getSequence();
  // Random prompt ids (a fixed LCG; content does not change the cost of a forward pass).
  const embd = m.fileInfo.tensorInfo?.find((t) => t.name === "token_embd.weight");
  const nVocab = Number(embd?.dimensions?.[1] ?? 256);
  let s = 12345;
  const prompt = Array.from({ length: o.prompt }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % nVocab;
  });
  // Warm-up, as hearth does: one token through every weight, then forget it.
  await seq.evaluateWithoutGeneratingNewTokens([prompt[0]]);
  await seq.clearHistory();

  // Greedy (temperature 0) and not stopping at end-of-generation tokens, like hearth bench.
  let n = 0, tFirst = 0, tEnd = 0;
  const tStart = performance.now();
  for await (const _ of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
    if (n === 0) tFirst = performance.now();
    if (n === o.gen) {
      tEnd = performance.now();
      break;
    }
    n++;
  }
  const firstMs = tFirst - tStart;
  const out = {
    backend: `llama.cpp cpu (${llama.buildType})`,
    threads: ctx.currentThreads ?? o.threads,
    load_ms: loadMs,
    first_token_ms: firstMs,
    prefill_tps: (o.prompt * 1000) / firstMs,
    decode_tps: (o.gen * 1000) / (tEnd - tFirst),
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
  };
  await ctx.dispose();
  await m.dispose();
  await llama.dispose();
  process.stdout.write(JSON.stringify(out) + "\n");
}

// ---- driver ----

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("error", reject);
    p.on("close", (code) => {
      if (code !== 0) reject(new Error(`${path.basename(cmd)} ${args.join(" ")} exited ${code}: ${err.trim()}`));
      else resolve(out);
    });
  });
}

async function runHearth(o, model) {
  const args = ["bench", model, "--prompt", String(o.prompt), "--gen", String(o.gen), "--repeat", "1", "--json"];
  if (o.threads) args.push("--threads", String(o.threads));
  const out = await run(o.hearth, args);
  const doc = JSON.parse(out);
  return { ...doc.results[0], membw_gbs: doc.membw_gbs };
}

// The plain read of the model's matrices, in GB/s (bench/weight-stream.c --read-only: a fault-in pass,
// then the median of three).
async function readRate(o, model) {
  const out = await run(o.weightStream, [model, "--read-only", "--rounds", "3", "--threads", String(o.threads)]);
  return JSON.parse(out.trim().split("\n").pop()).read_gbs;
}

async function runLlama(o, model) {
  const out = await run(process.execPath, [self, "--llama-worker", model, "--prompt", String(o.prompt),
    "--gen", String(o.gen), "--threads", String(o.threads)]);
  return JSON.parse(out.trim().split("\n").pop());
}

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  const h = v.length >> 1;
  return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
};
const f = (x, d = 2) => x.toFixed(d);

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.worker) return llamaWorker(o);
  o.hearth ??= process.env.HEARTH_BIN ?? path.join(here, "..", "build", "hearth");
  if (!o.threads) {
    // hearth's default (physical cores) would differ from llama.cpp's; pin both to one number.
    const probe = await runHearth({ ...o, prompt: 1, gen: 1, threads: 0, repeat: 1 }, o.models[0]).catch(() => null);
    o.threads = probe?.threads ?? Math.max(1, os.availableParallelism() >> 1);
  }
  if (o.readRate) {
    // Built once by its script (which also checks it runs) next to the hearth binary's library.
    const build = path.dirname(o.hearth);
    await run("bash", [path.join(here, "weight-stream.sh"), build, o.models[0], "--read-only", "--rounds", "1",
      "--threads", String(o.threads)]);
    o.weightStream = path.join(build, "weight-stream");
  }
  const rows = [];
  for (const model of o.models) {
    const h = [], l = [];
    // Each run is bracketed by reads: a run's read rate is the mean of the one before and after it.
    let before = o.readRate ? await readRate(o, model) : 0;
    const timed = async (fn) => {
      const res = await fn(o, model);
      if (o.readRate) {
        const after = await readRate(o, model);
        res.read_gbs = (before + after) / 2;
        before = after;
      }
      return res;
    };
    for (let r = 0; r < o.repeat; r++) {
      // Alternate which engine goes first, so a trend in machine load does not favour one.
      if (r % 2 === 0) {
        h.push(await timed(runHearth));
        l.push(await timed(runLlama));
      } else {
        l.push(await timed(runLlama));
        h.push(await timed(runHearth));
      }
      if (o.readRate) {
        // Both engines read the same matrices a token; hearth reports how many bytes that is.
        const bytes = h.at(-1).decode_bytes_per_token;
        for (const x of [h.at(-1), l.at(-1)]) x.read_pct = (100 * x.decode_tps * bytes) / (x.read_gbs * 1e9);
      }
      const pct = (x) => (o.readRate ? ` (${f(x.read_pct, 0)}% of ${f(x.read_gbs, 1)} GB/s read)` : "");
      process.stderr.write(`${path.basename(model)} run ${r + 1}/${o.repeat}: hearth ${f(h.at(-1).decode_tps)}${pct(h.at(-1))}` +
        ` / llama.cpp ${f(l.at(-1).decode_tps)}${pct(l.at(-1))} decode tok/s\n`);
    }
    const med = (xs, k) => median(xs.map((x) => x[k]));
    const row = { model, type: h[0].type, threads: o.threads, prompt: o.prompt, gen: o.gen, repeat: o.repeat };
    for (const k of ["prefill_tps", "decode_tps", "first_token_ms", "load_ms", "peak_rss_bytes"]) {
      row[`hearth_${k}`] = med(h, k);
      row[`llama_${k}`] = med(l, k);
    }
    row.membw_gbs = med(h, "membw_gbs");
    row.roofline_tps = med(h, "roofline_tps");
    row.prefill_ratio = row.hearth_prefill_tps / row.llama_prefill_tps;
    row.decode_ratio = row.hearth_decode_tps / row.llama_decode_tps;
    // The median of the per-repeat ratios: each pair ran within seconds of each other.
    row.decode_ratio_paired = median(h.map((x, i) => x.decode_tps / l[i].decode_tps));
    if (o.readRate) {
      row.hearth_read_pct = med(h, "read_pct");
      row.llama_read_pct = med(l, "read_pct");
      row.read_gbs = median([...h, ...l].map((x) => x.read_gbs));
    }
    rows.push(row);
  }
  if (o.json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  const gib = (b) => f(b / 2 ** 30);
  console.log(`prompt ${o.prompt} tokens, ${o.gen} generated, ${o.threads} threads, medians of ${o.repeat} alternating runs\n`);
  const rr = o.readRate;
  console.log("| model | type | prefill tok/s hearth | prefill tok/s llama.cpp | prefill ratio | decode tok/s hearth | decode tok/s llama.cpp | decode ratio | paired decode ratio | roofline tok/s |" +
    (rr ? " read GB/s | decode % of read hearth / llama.cpp |" : "") + " peak RSS GiB hearth / llama.cpp |");
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (rr ? " ---: | ---: |" : "") + " ---: |");
  for (const r of rows)
    console.log(`| ${path.basename(r.model)} | ${r.type} | ${f(r.hearth_prefill_tps)} | ${f(r.llama_prefill_tps)} | ${f(r.prefill_ratio)} | ` +
      `${f(r.hearth_decode_tps)} | ${f(r.llama_decode_tps)} | ${f(r.decode_ratio)} | ${f(r.decode_ratio_paired)} | ${f(r.roofline_tps, 1)} | ` +
      (rr ? `${f(r.read_gbs, 1)} | ${f(r.hearth_read_pct, 0)}% / ${f(r.llama_read_pct, 0)}% | ` : "") +
      `${gib(r.hearth_peak_rss_bytes)} / ${gib(r.llama_peak_rss_bytes)} |`);
  console.log("\nratio = hearth / llama.cpp (above 1: hearth is faster); paired: the median of each repeat's ratio" +
    (rr ? "; read: a plain read of the same matrices between runs, each run against the mean of the reads either side" : ""));
}

main().catch((e) => {
  console.error(`compare: ${e.message}`);
  process.exit(1);
});
