// generate_fields.test.mjs — /api/generate's `template` and `suffix` fields, driven with the ollama
// npm client against a live `hearth serve` on ../shared/models/stories260K.gguf: a per-request Go
// template or a Modelfile TEMPLATE naming .Suffix must give exactly the greedy tokens of a raw
// generate of the text it renders; templates without .Suffix refuse a suffix.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { serverLog, startServer, stopServers } from './server.mjs';

const require = createRequire(path.join(process.env.HEARTH_SOURCE || process.cwd(), 'package.json'));
const { Ollama } = require('ollama');

const SHARED = process.env.HEARTH_SHARED;
const STORIES = path.join(SHARED, 'models/stories260K.gguf');
const PROMPT = 'Once upon a time';
const greedy = { temperature: 0, num_predict: 24 };
const FIM = '<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>';

let base, ollama, root;

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-genfields-'));
  ({ base } = await startServer(root));
  ollama = new Ollama({ host: base });
  const weights = fs.readFileSync(STORIES);
  const digest = 'sha256:' + crypto.createHash('sha256').update(weights).digest('hex');
  assert.equal((await fetch(`${base}/api/blobs/${digest}`, { method: 'POST', body: weights })).status, 201);
  for (const [model, template] of [['plain', undefined], ['fim', FIM], ['chatty', 'User: {{ .Prompt }}\nBot:']]) {
    const r = await ollama.create({ model, files: { 'stories260K.gguf': digest }, template });
    assert.equal(r.status, 'success', `create ${model}: ${serverLog()}`);
  }
});

after(async () => {
  await stopServers();
  fs.rmSync(root, { recursive: true, force: true });
});

async function rawOf(model, text) {
  return ollama.generate({ model, prompt: text, raw: true, options: greedy });
}

test('a request template replaces the model\'s and renders like a raw prompt of its text', async () => {
  const viaTemplate = await ollama.generate({
    model: 'plain', prompt: PROMPT, template: '<<{{ .Prompt }}>>', raw: false, options: greedy,
  });
  const raw = await rawOf('plain', `<<${PROMPT}>>`);
  const plain = await ollama.generate({ model: 'plain', prompt: PROMPT, options: greedy });
  assert.ok(viaTemplate.response.length > 0);
  assert.equal(viaTemplate.response, raw.response);
  assert.equal(viaTemplate.prompt_eval_count, raw.prompt_eval_count);
  // The brackets are real prompt tokens: the template was not ignored.
  assert.ok(viaTemplate.prompt_eval_count > plain.prompt_eval_count,
    `${viaTemplate.prompt_eval_count} vs ${plain.prompt_eval_count}`);
  assert.ok(Array.isArray(viaTemplate.context) && viaTemplate.context.length > 0);

  // It also overrides a Modelfile TEMPLATE, for that request only.
  const over = await ollama.generate({ model: 'chatty', prompt: PROMPT, template: '<<{{ .Prompt }}>>', options: greedy });
  assert.equal(over.response, raw.response);
  const own = await ollama.generate({ model: 'chatty', prompt: PROMPT, options: greedy });
  assert.equal(own.response, (await rawOf('chatty', `User: ${PROMPT}\nBot:`)).response);
});

test('template errors: raw with a template, a template that does not parse, a non-string', async () => {
  await assert.rejects(ollama.generate({ model: 'plain', prompt: PROMPT, raw: true, template: '{{ .Prompt }}' }),
    (e) => e.status_code === 400 && /raw mode does not support template/.test(e.message));
  await assert.rejects(ollama.generate({ model: 'plain', prompt: PROMPT, template: '{{ .Prompt ' }),
    (e) => e.status_code === 400 && /template/.test(e.message));
  const r = await fetch(`${base}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'plain', prompt: 'x', template: 7 }) });
  assert.equal(r.status, 400);
});

test('suffix with a request template naming .Suffix fills in the middle', async () => {
  const fim = await ollama.generate({
    model: 'plain', prompt: PROMPT, suffix: ' and they lived happily.', template: FIM, options: greedy,
  });
  const raw = await rawOf('plain', `<PRE> ${PROMPT} <SUF> and they lived happily. <MID>`);
  assert.ok(fim.response.length > 0);
  assert.equal(fim.response, raw.response);
  assert.equal(fim.prompt_eval_count, raw.prompt_eval_count);
});

test('suffix with a Modelfile TEMPLATE naming .Suffix fills in the middle', async () => {
  const fim = await ollama.generate({ model: 'fim', prompt: PROMPT, suffix: ' The end.', options: greedy });
  const raw = await rawOf('fim', `<PRE> ${PROMPT} <SUF> The end. <MID>`);
  assert.equal(fim.response, raw.response);
  assert.equal(fim.prompt_eval_count, raw.prompt_eval_count);
});

test('suffix on a template without .Suffix is refused: "<model> does not support insert"', async () => {
  for (const req of [
    { model: 'plain', prompt: PROMPT, suffix: 'x' },                               // no template at all
    { model: 'chatty', prompt: PROMPT, suffix: 'x' },                              // Modelfile TEMPLATE without .Suffix
    { model: 'fim', prompt: PROMPT, suffix: 'x', template: '<<{{ .Prompt }}>>' }, // the request's replaces it
  ]) {
    await assert.rejects(ollama.generate(req),
      (e) => e.status_code === 400 && e.message === `${req.model} does not support insert`, JSON.stringify(req));
  }
  // An empty suffix is no suffix.
  const ok = await ollama.generate({ model: 'chatty', prompt: PROMPT, suffix: '', options: greedy });
  assert.ok(ok.response.length > 0);
});
