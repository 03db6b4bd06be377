// store.test.mjs — `hearth serve` over the model store, driven by the official ollama client:
// blob upload (HEAD/POST /api/blobs), create in Ollama's JSON form with streamed status, list/show
// from the store, Modelfile parameters and system under request precedence, copy/delete, ps names,
// KV-cache prefix reuse giving identical greedy text, and the Origin/Host checks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, startServer, stopServers } from './server.mjs';

const require = createRequire(path.join(process.env.HEARTH_SOURCE || process.cwd(), 'package.json'));
const { Ollama } = require('ollama');

const SHARED = process.env.HEARTH_SHARED;
const STORIES = path.join(SHARED, 'models/stories260K.gguf');
const GREEDY = fs.readFileSync(path.join(SHARED, 'models/reference/stories260K.greedy-t0.txt'), 'utf8');
const PROMPT = 'Once upon a time';

let base, port, ollama, root;
const weights = fs.readFileSync(STORIES);
const DIGEST = 'sha256:' + crypto.createHash('sha256').update(weights).digest('hex');

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-store-api-'));
  ({ base, port } = await startServer(root, { HEARTH_ORIGINS: 'https://ok.example' }));
  ollama = new Ollama({ host: base });
});

after(async () => {
  await stopServers();
  fs.rmSync(root, { recursive: true, force: true });
});

test('blobs: HEAD 404, POST with a wrong digest 400, POST 201, HEAD 200', async () => {
  assert.equal((await fetch(`${base}/api/blobs/${DIGEST}`, { method: 'HEAD' })).status, 404);
  const wrong = 'sha256:' + '0'.repeat(64);
  const bad = await fetch(`${base}/api/blobs/${wrong}`, { method: 'POST', body: weights });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /digest mismatch/);
  assert.equal((await fetch(`${base}/api/blobs/${wrong}`, { method: 'HEAD' })).status, 404);
  assert.equal((await fetch(`${base}/api/blobs/not-a-digest`, { method: 'HEAD' })).status, 400);
  const ok = await fetch(`${base}/api/blobs/${DIGEST}`, { method: 'POST', body: weights });
  assert.equal(ok.status, 201);
  assert.equal((await fetch(`${base}/api/blobs/${DIGEST}`, { method: 'HEAD' })).status, 200);
});

test('create from an uploaded blob streams status objects ending in success', async () => {
  const statuses = [];
  const stream = await ollama.create({
    model: 'tiny', files: { 'stories260K.gguf': DIGEST }, parameters: { temperature: 0, num_predict: 5 }, stream: true,
  });
  for await (const part of stream) statuses.push(part.status);
  assert.ok(statuses.length >= 2, JSON.stringify(statuses));
  assert.equal(statuses.at(-1), 'success');
  // A child model FROM the first, adding a system prompt and a stop string.
  const r = await ollama.create({ model: 'tiny-sys', from: 'tiny', system: 'You are terse.', parameters: { stop: ['zzz'] } });
  assert.equal(r.status, 'success');
});

test('create rejects what Ollama rejects', async () => {
  await assert.rejects(ollama.create({ model: 'x' }), /neither 'from' or 'files'/);
  await assert.rejects(ollama.create({ model: 'x', files: { 'a.gguf': 'sha256:' + '1'.repeat(64) } }), /not in the store/);
  await assert.rejects(ollama.create({ model: 'x', from: 'tiny', parameters: { top_k: 'many' } }), /top_k/);
  await assert.rejects(ollama.create({ model: 'x', from: 'tiny', quantize: 'q9_z' }), /quantize/);
  await assert.rejects(ollama.create({ model: 'x', from: 'no-such-model', stream: false }), /not found/);
});

test('list and show come from the store', async () => {
  const { models } = await ollama.list();
  const tiny = models.find((m) => m.name === 'tiny:latest');
  assert.ok(tiny, JSON.stringify(models.map((m) => m.name)));
  assert.match(tiny.digest, /^[0-9a-f]{64}$/);
  assert.ok(tiny.size >= weights.length);
  assert.equal(tiny.details.format, 'gguf');
  assert.equal(tiny.details.family, 'llama');
  const show = await ollama.show({ model: 'tiny-sys' });
  assert.equal(show.system, 'You are terse.');
  assert.match(show.parameters, /num_predict\s+5/);
  assert.match(show.parameters, /stop\s+"zzz"/);
  assert.match(show.modelfile, /SYSTEM/);
  assert.equal(show.model_info['general.architecture'], 'llama');
  assert.equal(show.details.parent_model.length > 0, true);
});

test('Modelfile parameters apply under the request options', async () => {
  const a = await ollama.generate({ model: 'tiny', prompt: PROMPT, stream: false });
  assert.equal(a.eval_count, 5); // num_predict from the Modelfile
  assert.ok(GREEDY.startsWith(PROMPT + a.response), JSON.stringify(a.response)); // temperature 0 from it
  const b = await ollama.generate({ model: 'tiny', prompt: PROMPT, stream: false, options: { num_predict: 3 } });
  assert.equal(b.eval_count, 3);
  assert.ok(a.response.startsWith(b.response));
});

test('the Modelfile SYSTEM is used unless the request brings one', async () => {
  // stories260K has no chat template: the plain fallback joins system and prompt with a blank line,
  // so the system prompt changes the greedy continuation exactly as a request system does.
  const viaModelfile = await ollama.generate({ model: 'tiny-sys', prompt: PROMPT, stream: false });
  const viaRequest = await ollama.generate({ model: 'tiny', prompt: PROMPT, system: 'You are terse.', stream: false });
  assert.equal(viaModelfile.response, viaRequest.response);
  assert.equal(viaModelfile.prompt_eval_count, viaRequest.prompt_eval_count);
  const plain = await ollama.generate({ model: 'tiny', prompt: PROMPT, stream: false });
  assert.ok(viaModelfile.prompt_eval_count > plain.prompt_eval_count);
});

test('prefix reuse of the KV cache gives the same greedy text as a cold context', async () => {
  const opts = { temperature: 0, num_predict: 20 };
  const cold = await ollama.generate({ model: 'tiny', prompt: PROMPT, stream: false, options: opts, keep_alive: 0 });
  const warm1 = await ollama.generate({ model: 'tiny', prompt: PROMPT, stream: false, options: opts });
  const warm2 = await ollama.generate({ model: 'tiny', prompt: PROMPT, stream: false, options: opts });
  assert.equal(warm1.response, cold.response);
  assert.equal(warm2.response, cold.response);
  // A longer prompt sharing the prefix, and then the shorter one again.
  const longer = await ollama.generate({ model: 'tiny', prompt: PROMPT + cold.response, stream: false, options: opts });
  const coldLonger = GREEDY.slice((PROMPT + cold.response).length);
  assert.ok(coldLonger.startsWith(longer.response), JSON.stringify(longer.response));
  const again = await ollama.generate({ model: 'tiny', prompt: PROMPT, stream: false, options: opts });
  assert.equal(again.response, cold.response);
});

test('ps names the store model', async () => {
  await ollama.generate({ model: 'tiny', prompt: '', keep_alive: '1m' });
  const { models } = await ollama.ps();
  const m = models.find((x) => x.name === 'tiny:latest');
  assert.ok(m, JSON.stringify(models));
  assert.match(m.digest, /^[0-9a-f]{64}$/);
});

test('copy and delete', async () => {
  await ollama.copy({ source: 'tiny', destination: 'tiny-copy:v2' });
  let names = (await ollama.list()).models.map((m) => m.name);
  assert.ok(names.includes('tiny-copy:v2'), JSON.stringify(names));
  const r = await ollama.generate({ model: 'tiny-copy:v2', prompt: PROMPT, stream: false });
  assert.equal(r.eval_count, 5);
  await ollama.delete({ model: 'tiny-copy:v2' });
  names = (await ollama.list()).models.map((m) => m.name);
  assert.ok(!names.includes('tiny-copy:v2'));
  await assert.rejects(ollama.delete({ model: 'tiny-copy:v2' }), /not found/);
  await assert.rejects(ollama.copy({ source: 'nope', destination: 'x' }), /not found/);
  // The shared weights blob survives for the models still using it.
  assert.equal((await fetch(`${base}/api/blobs/${DIGEST}`, { method: 'HEAD' })).status, 200);
});

test('push and pull through a local registry stream Ollama progress objects', async (t) => {
  const reg = ['/usr/bin/docker-registry', '/usr/bin/registry'].find((p) => fs.existsSync(p));
  if (!reg) { t.skip('docker-registry not installed'); return; }
  const rport = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-reg-'));
  fs.writeFileSync(path.join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${rport}\n`);
  const rp = spawn(reg, ['serve', path.join(dir, 'config.yml')], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 50; i++) {
      try { if ((await fetch(`http://127.0.0.1:${rport}/v2/`)).ok) break; } catch { /* not up yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    const remote = `127.0.0.1:${rport}/library/tiny:latest`;
    await ollama.copy({ source: 'tiny', destination: remote });
    const pushed = [];
    for await (const p of await ollama.push({ model: remote, insecure: true, stream: true })) pushed.push(p);
    assert.equal(pushed.at(-1).status, 'success', JSON.stringify(pushed));
    await ollama.delete({ model: remote });
    const pulled = [];
    for await (const p of await ollama.pull({ model: remote, insecure: true, stream: true })) pulled.push(p);
    assert.equal(pulled.at(-1).status, 'success', JSON.stringify(pulled));
    assert.ok(pulled.some((p) => p.status === 'pulling manifest'));
    const names = (await ollama.list()).models.map((m) => m.name);
    assert.ok(names.some((n) => n.startsWith(`127.0.0.1:${rport}/`)), JSON.stringify(names));
    const r = await ollama.generate({ model: remote, prompt: PROMPT, stream: false });
    assert.equal(r.eval_count, 5); // the pulled manifest carries the Modelfile parameters
    await assert.rejects(ollama.pull({ model: `127.0.0.1:${rport}/library/absent:latest`, insecure: true, stream: false }),
      /file does not exist|not found/);
  } finally {
    rp.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function rawGet(headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/api/version', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    });
    req.on('error', reject);
    req.end();
  });
}

test('Origin and Host checks as Ollama', async () => {
  assert.equal((await rawGet({ Origin: 'https://evil.example' })).statusCode, 403);
  const local = await rawGet({ Origin: 'http://localhost:3000' });
  assert.equal(local.statusCode, 200);
  assert.equal(local.headers['access-control-allow-origin'], 'http://localhost:3000');
  assert.equal((await rawGet({ Origin: 'https://ok.example' })).statusCode, 200); // HEARTH_ORIGINS
  assert.equal((await rawGet({ Host: 'evil.example' })).statusCode, 403);
  assert.equal((await rawGet({ Host: 'localhost:1234' })).statusCode, 200);
  assert.equal((await rawGet({ Host: 'box.local' })).statusCode, 200);
});
