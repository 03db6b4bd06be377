// serve.test.mjs — drives a live `hearth serve` with the official ollama and openai npm clients:
// generation and chat (streamed and not) checked against the reference greedy text of
// ../shared/models/stories260K.gguf, chat templates checked against @huggingface/jinja, options,
// seeds, list/ps/show, load/unload, errors, OpenAI SSE, embeddings, disconnects and shutdown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startServer, stopServers } from './server.mjs';

const require = createRequire(path.join(process.env.HEARTH_SOURCE || process.cwd(), 'package.json'));
const { Ollama } = require('ollama');
const OpenAI = require('openai');
const { Template } = require('@huggingface/jinja');

const SHARED = process.env.HEARTH_SHARED;
const STORIES = path.join(SHARED, 'models/stories260K.gguf');
const QWEN2 = path.join(SHARED, 'reference/tiny-models/qwen2-dev-f32.gguf');
const GREEDY = fs.readFileSync(path.join(SHARED, 'models/reference/stories260K.greedy-t0.txt'), 'utf8');
const PROMPT = 'Once upon a time';

let proc, base, ollama, openai, modelsDir;

before(async () => {
  modelsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-api-'));
  fs.symlinkSync(STORIES, path.join(modelsDir, 'stories.gguf'));
  ({ proc, base } = await startServer(modelsDir));
  ollama = new Ollama({ host: base });
  openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused' });
});

after(async () => {
  await stopServers();
  fs.rmSync(modelsDir, { recursive: true, force: true });
});

const greedy = { temperature: 0, num_predict: 24 };

test('root and version', async () => {
  const r = await fetch(base);
  assert.equal(await r.text(), 'Ollama is running');
  const v = await ollama.version();
  assert.match(v.version, /^\d+\.\d+\.\d+/);
});

test('generate (not streamed) continues the reference greedy text', async () => {
  const r = await ollama.generate({ model: STORIES, prompt: PROMPT, stream: false, options: greedy });
  assert.ok(r.response.length > 20);
  assert.ok(GREEDY.startsWith(PROMPT + r.response), `got ${JSON.stringify(r.response)}`);
  assert.equal(r.done, true);
  assert.equal(r.done_reason, 'length');
  assert.equal(r.eval_count, 24);
  assert.ok(r.prompt_eval_count >= 4);
  for (const k of ['total_duration', 'prompt_eval_duration', 'eval_duration']) assert.ok(r[k] > 0, k);
  assert.ok(r.total_duration >= r.eval_duration);
  assert.ok(Array.isArray(r.context) && r.context.length === r.prompt_eval_count + r.eval_count);
  assert.match(r.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
});

test('generate streamed gives the same text and a final chunk with metrics', async () => {
  const full = await ollama.generate({ model: STORIES, prompt: PROMPT, stream: false, options: greedy });
  let text = '', chunks = 0, last;
  for await (const c of await ollama.generate({ model: STORIES, prompt: PROMPT, stream: true, options: greedy })) {
    chunks++;
    if (!c.done) text += c.response;
    last = c;
  }
  assert.ok(chunks > 5);
  assert.equal(text, full.response);
  assert.equal(last.done, true);
  assert.equal(last.response, '');
  assert.equal(last.eval_count, 24);
  assert.ok(last.load_duration >= 0 && last.prompt_eval_duration > 0);
});

test('chat on a model without a template uses the message text as the prompt', async () => {
  const g = await ollama.generate({ model: STORIES, prompt: PROMPT, stream: false, options: greedy });
  const c = await ollama.chat({ model: STORIES, messages: [{ role: 'user', content: PROMPT }], stream: false, options: greedy });
  assert.equal(c.message.role, 'assistant');
  assert.equal(c.message.content, g.response);
  let text = '';
  for await (const ch of await ollama.chat({ model: STORIES, messages: [{ role: 'user', content: PROMPT }], stream: true, options: greedy }))
    text += ch.message.content;
  assert.equal(text, g.response);
});

test('chat renders the GGUF chat template like @huggingface/jinja', async () => {
  const show = await ollama.show({ model: QWEN2 });
  assert.match(show.template, /im_start/);
  const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Hello there' }];
  const rendered = new Template(show.template).render({ messages, add_generation_prompt: true, bos_token: '', eos_token: '<|im_end|>' });
  const opts = { temperature: 0, num_predict: 12 };
  const viaChat = await ollama.chat({ model: QWEN2, messages, stream: false, options: opts });
  const viaRaw = await ollama.generate({ model: QWEN2, prompt: rendered, raw: true, stream: false, options: opts });
  assert.equal(viaChat.prompt_eval_count, viaRaw.prompt_eval_count);
  assert.equal(viaChat.message.content, viaRaw.response);
  assert.ok(viaChat.prompt_eval_count > 10);
});

test('options: stop strings, seeds, num_predict', async () => {
  const r = await ollama.generate({ model: STORIES, prompt: PROMPT, stream: false, options: { temperature: 0, stop: [' Lily'] } });
  assert.equal(r.done_reason, 'stop');
  assert.ok(!r.response.includes('Lily'));
  assert.ok(GREEDY.startsWith(PROMPT + r.response + ' Lily'));
  const seeded = { temperature: 1.0, seed: 1234, num_predict: 30 };
  const a = await ollama.generate({ model: STORIES, prompt: PROMPT, stream: false, options: seeded });
  const b = await ollama.generate({ model: STORIES, prompt: PROMPT, stream: false, options: seeded });
  assert.equal(a.response, b.response);
  const outs = new Set();
  for (const seed of [1, 2, 3, 4]) outs.add((await ollama.generate({ model: STORIES, prompt: PROMPT, stream: false, options: { ...seeded, seed } })).response);
  assert.ok(outs.size > 1, 'different seeds should give different text');
});

test('list, show and ps', async () => {
  const tags = await ollama.list();
  const m = tags.models.find((x) => x.name === 'stories:latest');
  assert.ok(m, JSON.stringify(tags));
  assert.equal(m.details.family, 'llama');
  assert.equal(m.size, fs.statSync(STORIES).size);
  const byName = await ollama.generate({ model: 'stories', prompt: PROMPT, stream: false, options: { temperature: 0, num_predict: 5 } });
  assert.ok(GREEDY.startsWith(PROMPT + byName.response));
  const show = await ollama.show({ model: 'stories:latest' });
  assert.equal(show.model_info['general.architecture'], 'llama');
  assert.equal(show.model_info['llama.embedding_length'], 64);
  assert.equal(show.details.format, 'gguf');
  // ps names a model as it was last asked for (here by its name in HEARTH_MODELS).
  const ps = await ollama.ps();
  const one = ps.models.find((x) => x.name === 'stories:latest');
  assert.ok(one, JSON.stringify(ps.models));
  assert.ok(Date.parse(one.expires_at) > Date.now());
  assert.ok(one.context_length > 0);
});

test('load with an empty prompt, unload with keep_alive 0', async () => {
  const load = await ollama.generate({ model: QWEN2, prompt: '', stream: false });
  assert.equal(load.done_reason, 'load');
  assert.ok((await ollama.ps()).models.some((x) => x.model === QWEN2));
  const unload = await ollama.generate({ model: QWEN2, prompt: '', keep_alive: 0, stream: false });
  assert.equal(unload.done_reason, 'unload');
  assert.ok(!(await ollama.ps()).models.some((x) => x.model === QWEN2));
  const chatLoad = await ollama.chat({ model: QWEN2, messages: [], stream: false });
  assert.equal(chatLoad.done_reason, 'load');
  await ollama.chat({ model: QWEN2, messages: [], keep_alive: 0, stream: false });
  assert.ok(!(await ollama.ps()).models.some((x) => x.model === QWEN2));
});

async function post(p, body, headers = {}) {
  const r = await fetch(base + p, { method: 'POST', body, headers: { 'Content-Type': 'application/json', ...headers } });
  return { status: r.status, text: await r.text() };
}

test('errors: unknown model, bad JSON, wrong types, absurd options, huge bodies, bad UTF-8', async () => {
  await assert.rejects(ollama.generate({ model: 'nope', prompt: 'x', stream: false }),
    (e) => e.status_code === 404 && e.error === "model 'nope' not found");
  await assert.rejects(ollama.chat({ model: 'nope', messages: [{ role: 'user', content: 'x' }], stream: false }),
    (e) => e.status_code === 404);
  let r = await post('/api/generate', '{"model": ');
  assert.equal(r.status, 400);
  assert.ok(JSON.parse(r.text).error.length > 0);
  r = await post('/api/generate', '');
  assert.deepEqual([r.status, JSON.parse(r.text).error], [400, 'missing request body']);
  r = await post('/api/generate', JSON.stringify({ model: STORIES, prompt: 'x', options: { top_k: 'many' } }));
  assert.deepEqual([r.status, JSON.parse(r.text).error], [400, 'option "top_k" must be of type integer']);
  r = await post('/api/generate', JSON.stringify({ model: STORIES, prompt: 'x', options: { temperature: -3 } }));
  assert.equal(r.status, 400);
  assert.match(JSON.parse(r.text).error, /temperature/);
  r = await post('/api/chat', JSON.stringify({ model: STORIES, messages: [{ role: 'user', content: 5 }] }));
  assert.equal(r.status, 400);
  assert.match(JSON.parse(r.text).error, /messages\[0\]\.content/);
  r = await post('/api/generate', JSON.stringify({ model: STORIES, prompt: 'x'.repeat(40 << 20) }));
  assert.equal(r.status, 413);
  assert.match(JSON.parse(r.text).error, /too large/);
  const bad = Buffer.concat([Buffer.from('{"model":"' + STORIES + '","prompt":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
  r = await post('/api/generate', bad);
  assert.equal(r.status, 400);
  assert.ok(JSON.parse(r.text).error.length > 0);
  r = await fetch(base + '/api/generate');
  assert.equal(r.status, 405);
  // the server keeps serving
  const ok = await ollama.generate({ model: STORIES, prompt: PROMPT, stream: false, options: { temperature: 0, num_predict: 3 } });
  assert.equal(ok.eval_count, 3);
});

test('openai: chat completions, streamed with usage, completions, models', async () => {
  const ref = await ollama.generate({ model: STORIES, prompt: PROMPT, stream: false, options: { temperature: 0, num_predict: 10 } });
  const c = await openai.chat.completions.create({ model: STORIES, messages: [{ role: 'user', content: PROMPT }], temperature: 0, max_tokens: 10 });
  assert.equal(c.object, 'chat.completion');
  assert.equal(c.choices[0].message.content, ref.response);
  assert.equal(c.choices[0].finish_reason, 'length');
  assert.equal(c.usage.completion_tokens, 10);
  assert.equal(c.usage.total_tokens, c.usage.prompt_tokens + 10);

  const stream = await openai.chat.completions.create({ model: STORIES, messages: [{ role: 'user', content: PROMPT }], temperature: 0, max_tokens: 10, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const text = chunks.filter((x) => x.choices.length).map((x) => x.choices[0].delta.content || '').join('');
  assert.equal(text, ref.response);
  const fin = chunks.find((x) => x.choices.length && x.choices[0].finish_reason);
  assert.equal(fin.choices[0].finish_reason, 'length');
  assert.deepEqual(fin.choices[0].delta, {});
  const u = chunks[chunks.length - 1];
  assert.deepEqual(u.choices, []);
  assert.equal(u.usage.completion_tokens, 10);
  assert.ok(chunks.every((x) => x.id === chunks[0].id && x.created === chunks[0].created));

  const comp = await openai.completions.create({ model: STORIES, prompt: PROMPT, temperature: 0, max_tokens: 10 });
  assert.equal(comp.object, 'text_completion');
  assert.equal(comp.choices[0].text, ref.response);

  const models = await openai.models.list();
  assert.ok(models.data.some((m) => m.id === 'stories:latest'));
  await assert.rejects(openai.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 404);
  await assert.rejects(openai.chat.completions.create({ model: STORIES, messages: [] }), (e) => e.status === 400);
});

test('embeddings: unit-length, deterministic, input-dependent', async () => {
  const r = await ollama.embed({ model: STORIES, input: ['a cat sat', 'a cat sat', 'the big red ball'] });
  assert.equal(r.embeddings.length, 3);
  for (const v of r.embeddings) {
    assert.equal(v.length, 64);
    assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-4);
  }
  assert.deepEqual(r.embeddings[0], r.embeddings[1]);
  assert.notDeepEqual(r.embeddings[0], r.embeddings[2]);
  assert.ok(r.prompt_eval_count > 6);
  const o = await openai.embeddings.create({ model: STORIES, input: 'a cat sat' });
  assert.equal(o.data[0].embedding.length, 64);
  const cut = await ollama.embed({ model: STORIES, input: 'a cat sat', dimensions: 8 });
  assert.equal(cut.embeddings[0].length, 8);
  assert.ok(Math.abs(Math.hypot(...cut.embeddings[0]) - 1) < 1e-4);
});

test('a client that disconnects mid-stream frees its slot at once', async () => {
  const ac = new AbortController();
  const r = await fetch(base + '/api/generate', { method: 'POST', signal: ac.signal, body: JSON.stringify({ model: STORIES, prompt: PROMPT, options: { num_predict: -1, temperature: 0.9, num_ctx: 2048 } }) });
  const reader = r.body.getReader();
  await reader.read();
  ac.abort();
  // With one slot, this request waits for the abandoned one unless it was cancelled.
  const t0 = Date.now();
  const ok = await ollama.generate({ model: STORIES, prompt: PROMPT, stream: false, options: { temperature: 0, num_predict: 3, num_ctx: 2048 } });
  assert.equal(ok.eval_count, 3);
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
});

test('queue limit answers 503 and SIGTERM shuts down cleanly', async () => {
  const { proc: p, base: url } = await startServer(modelsDir, { HEARTH_MAX_QUEUE: '1' });
  try {
    // One slot and a queue of one: of several requests sent at once, one runs, one waits and the
    // rest are turned away, however fast the machine generates.
    const send = () => fetch(url + '/api/generate', {
      method: 'POST',
      body: JSON.stringify({ model: STORIES, prompt: PROMPT, stream: false, options: { num_predict: 1500, num_ctx: 2048 } }),
    });
    const responses = await Promise.all(Array.from({ length: 8 }, send));
    const statuses = responses.map((r) => r.status);
    assert.ok(statuses.includes(200), `statuses ${statuses}`);
    assert.ok(statuses.includes(503), `statuses ${statuses}`);
    const busy = responses[statuses.indexOf(503)];
    assert.match(JSON.parse(await busy.text()).error, /server busy/);
    await Promise.all(responses.map((r) => r.text().catch(() => '')));
  } finally {
    p.kill('SIGTERM');
  }
  const code = p.exitCode !== null ? p.exitCode : await new Promise((res) => p.once('exit', (c) => res(c)));
  assert.equal(code, 0);
});
