// output.test.mjs — structured output, tool calls, thinking and prompt truncation through a live
// `hearth serve`, with the official ollama and openai npm clients: "format" and response_format
// replies must parse and match their schema (stories260K, and the Qwen3 tiny model with its real
// chat template); tool_choice "required"/named forces a call through the grammar and the Qwen
// tool-call parser, streamed calls arrive whole and once; reasoning goes to message.thinking /
// delta.reasoning; a prompt cut to fit the context says so.
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
const OpenAI = require('openai');

const SHARED = process.env.HEARTH_SHARED;
const STORIES = path.join(SHARED, 'models/stories260K.gguf');
const QWEN3 = path.join(SHARED, 'reference/tiny-models/qwen3-dev-f32.gguf');

let base, ollama, openai, modelsDir;

before(async () => {
  modelsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-out-'));
  fs.symlinkSync(STORIES, path.join(modelsDir, 'stories.gguf'));
  fs.symlinkSync(QWEN3, path.join(modelsDir, 'qwen3.gguf'));
  ({ base } = await startServer(modelsDir, { HEARTH_CONTEXT_LENGTH: '1024' }));
  ollama = new Ollama({ host: base });
  openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused' });
});

after(async () => {
  await stopServers();
  fs.rmSync(modelsDir, { recursive: true, force: true });
  assert.doesNotMatch(serverLog(), /Sanitizer|runtime error/);
});

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer' },
    happy: { type: 'boolean' },
    mood: { enum: ['calm', 'angry', 'sad'] },
  },
  required: ['name', 'age', 'happy', 'mood'],
};

function checkPerson(v) {
  assert.deepEqual(Object.keys(v), ['name', 'age', 'happy', 'mood']);
  assert.equal(typeof v.name, 'string');
  assert.ok(v.name.length <= 12);
  assert.ok(Number.isInteger(v.age));
  assert.equal(typeof v.happy, 'boolean');
  assert.ok(['calm', 'angry', 'sad'].includes(v.mood));
}

const WEATHER = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['c', 'f'] } },
      required: ['city', 'unit'],
    },
  },
}, {
  type: 'function',
  function: {
    name: 'add',
    parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'] },
  },
}];

test('format "json" on /api/generate gives JSON that parses (stories260K)', async () => {
  for (const seed of [1, 2, 3]) {
    const r = await ollama.generate({
      model: 'stories', prompt: 'Once upon a time', format: 'json', stream: false,
      options: { seed, temperature: 0.7, num_predict: 300 },
    });
    if (r.done_reason === 'stop') JSON.parse(r.response);
    else assert.match(r.response.trimStart(), /^[[{"0-9tfn-]/, 'a cut reply still starts a JSON value');
  }
});

test('format schema on /api/generate: the reply matches the schema', async () => {
  for (const seed of [1, 2]) {
    const r = await ollama.generate({
      model: 'stories', prompt: 'Tell me about Lily.', format: PERSON, stream: false,
      options: { seed, temperature: 0.8, num_predict: 200 },
    });
    assert.equal(r.done_reason, 'stop', r.response);
    checkPerson(JSON.parse(r.response));
  }
});

test('format schema on /api/chat with the Qwen3 template, streamed and think off', async () => {
  const parts = [];
  let thinking = '';
  for await (const c of await ollama.chat({
    model: 'qwen3', messages: [{ role: 'user', content: 'Describe a person.' }], format: PERSON,
    think: false, stream: true, options: { temperature: 0, num_predict: 200 },
  })) {
    parts.push(c.message.content);
    thinking += c.message.thinking || '';
    if (c.done) assert.equal(c.done_reason, 'stop');
  }
  assert.equal(thinking, '');
  checkPerson(JSON.parse(parts.join('')));
  // think not given: the Qwen3 template may think, but the prompt does not open a block, so the
  // constraint holds from the first token.
  const r = await ollama.chat({
    model: 'qwen3', messages: [{ role: 'user', content: 'Describe a person.' }], format: PERSON,
    stream: false, options: { temperature: 0, num_predict: 200 },
  });
  checkPerson(JSON.parse(r.message.content));
});

test('an invalid schema, tools or think on a model without them are 400s naming the problem', async () => {
  await assert.rejects(ollama.generate({ model: 'stories', prompt: 'x', format: { $ref: '#/$defs/nope' } }),
    (e) => e.status_code === 400 && /schema/.test(e.message));
  await assert.rejects(ollama.generate({ model: 'stories', prompt: 'x', format: 12 }),
    (e) => e.status_code === 400 && /format/.test(e.message));
  await assert.rejects(ollama.chat({ model: 'stories', messages: [{ role: 'user', content: 'x' }], tools: WEATHER }),
    (e) => e.status_code === 400 && /does not support tools/.test(e.message));
  await assert.rejects(ollama.chat({ model: 'stories', messages: [{ role: 'user', content: 'x' }], think: true }),
    (e) => e.status_code === 400 && /does not support thinking/.test(e.message));
  await assert.rejects(openai.chat.completions.create({
    model: 'qwen3', messages: [{ role: 'user', content: 'x' }], tools: WEATHER,
    tool_choice: { type: 'function', function: { name: 'nosuch' } },
  }), (e) => e.status === 400 && /nosuch/.test(e.message));
});

test('tool_choice "required" on /api/chat forces a whole, parsed call (Qwen3 template)', async () => {
  const r = await ollama.chat({
    model: 'qwen3', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: WEATHER,
    tool_choice: 'required', stream: false, options: { temperature: 0, num_predict: 120 },
  });
  assert.equal(r.message.content, '');
  assert.equal(r.message.tool_calls.length, 1);
  const f = r.message.tool_calls[0].function;
  assert.ok(['get_weather', 'add'].includes(f.name));
  if (f.name === 'get_weather') {
    assert.deepEqual(Object.keys(f.arguments), ['city', 'unit']);
    assert.ok(['c', 'f'].includes(f.arguments.unit));
  } else {
    assert.ok(Number.isInteger(f.arguments.a) && Number.isInteger(f.arguments.b));
  }

  // Streamed: the call comes in exactly one chunk, complete, and no text leaks around it.
  let calls = [], content = '';
  for await (const c of await ollama.chat({
    model: 'qwen3', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: WEATHER,
    tool_choice: 'required', stream: true, options: { temperature: 0, num_predict: 120 },
  })) {
    content += c.message.content;
    if (c.message.tool_calls) calls.push(...c.message.tool_calls);
  }
  assert.equal(content, '');
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0].function.arguments, f.arguments);
  assert.equal(calls[0].function.name, f.name);
});

test('tool_choice naming a function on /v1/chat/completions, streamed and not', async () => {
  const req = {
    model: 'qwen3', messages: [{ role: 'user', content: 'Add two numbers' }], tools: WEATHER,
    tool_choice: { type: 'function', function: { name: 'add' } }, temperature: 0, max_tokens: 120,
  };
  const r = await openai.chat.completions.create(req);
  const ch = r.choices[0];
  assert.equal(ch.finish_reason, 'tool_calls');
  assert.equal(ch.message.tool_calls.length, 1);
  const call = ch.message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'add');
  const args = JSON.parse(call.function.arguments);
  assert.ok(Number.isInteger(args.a) && Number.isInteger(args.b));

  const deltas = [];
  let finish;
  for await (const c of await openai.chat.completions.create({ ...req, stream: true })) {
    const d = c.choices[0]?.delta;
    if (d?.tool_calls) deltas.push(...d.tool_calls);
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(deltas.length, 1);
  assert.equal(deltas[0].function.name, 'add');
  assert.deepEqual(JSON.parse(deltas[0].function.arguments), args);

  // The call and its result go back through the template on the next turn.
  const r2 = await openai.chat.completions.create({
    model: 'qwen3', tools: WEATHER, max_tokens: 4, temperature: 0,
    messages: [req.messages[0], ch.message, { role: 'tool', tool_call_id: call.id, content: '42' }],
  });
  assert.ok(r2.usage.prompt_tokens > r.usage.prompt_tokens);
});

test('tool_choice "none" leaves the tools out of the prompt', async () => {
  const msgs = [{ role: 'user', content: 'hi' }];
  const a = await openai.chat.completions.create({ model: 'qwen3', messages: msgs, max_tokens: 1, tools: WEATHER, tool_choice: 'none' });
  const b = await openai.chat.completions.create({ model: 'qwen3', messages: msgs, max_tokens: 1 });
  const c = await openai.chat.completions.create({ model: 'qwen3', messages: msgs, max_tokens: 1, tools: WEATHER });
  assert.equal(a.usage.prompt_tokens, b.usage.prompt_tokens);
  assert.ok(c.usage.prompt_tokens > b.usage.prompt_tokens + 50);
});

test('response_format json_schema and json_object on /v1/chat/completions', async () => {
  const r = await openai.chat.completions.create({
    model: 'stories', messages: [{ role: 'user', content: 'Lily' }], max_tokens: 200, seed: 3,
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON } },
  });
  assert.equal(r.choices[0].finish_reason, 'stop');
  checkPerson(JSON.parse(r.choices[0].message.content));
  const r2 = await openai.chat.completions.create({
    model: 'stories', messages: [{ role: 'user', content: 'Lily' }], max_tokens: 300, seed: 4,
    response_format: { type: 'json_object' },
  });
  if (r2.choices[0].finish_reason === 'stop') JSON.parse(r2.choices[0].message.content);
  await assert.rejects(openai.chat.completions.create({
    model: 'stories', messages: [{ role: 'user', content: 'x' }], response_format: { type: 'xml' },
  }), (e) => e.status === 400 && /response_format/.test(e.message));
});

test('thinking: a template that opens <think> sends the reasoning to thinking / reasoning', async () => {
  // A Modelfile TEMPLATE (Go) whose prompt ends inside a <think> block: a random model never
  // closes it, so everything it says is reasoning and the visible content stays empty.
  const template = '{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}' +
    '<|im_start|>assistant\n{{ if .Think }}<think>\n{{ end }}';
  const weights = fs.readFileSync(QWEN3);
  const digest = 'sha256:' + crypto.createHash('sha256').update(weights).digest('hex');
  assert.equal((await fetch(`${base}/api/blobs/${digest}`, { method: 'POST', body: weights })).status, 201);
  await ollama.create({ model: 'thinker', files: { 'qwen3.gguf': digest }, template });
  let thinking = '', content = '';
  for await (const c of await ollama.chat({
    model: 'thinker', messages: [{ role: 'user', content: 'why?' }], think: true, stream: true,
    options: { temperature: 0, num_predict: 16 },
  })) {
    thinking += c.message.thinking || '';
    content += c.message.content;
  }
  assert.ok(thinking.length > 0);
  assert.equal(content, '');
  // think:false: the template does not open the block, so the same tokens are content.
  const off = await ollama.chat({
    model: 'thinker', messages: [{ role: 'user', content: 'why?' }], think: false, stream: false,
    options: { temperature: 0, num_predict: 16 },
  });
  assert.equal(off.message.thinking, undefined);
  assert.ok(off.message.content.length > 0);
  // /api/generate and /v1 carry it too.
  const g = await ollama.generate({ model: 'thinker', prompt: 'why?', think: true, stream: false, options: { num_predict: 8 } });
  assert.ok(g.thinking.length > 0);
  assert.equal(g.response, '');
  let reasoning = '';
  for await (const c of await openai.chat.completions.create({
    model: 'thinker', messages: [{ role: 'user', content: 'why?' }], reasoning_effort: 'high', max_tokens: 8, stream: true,
  })) reasoning += c.choices[0]?.delta?.reasoning || '';
  assert.ok(reasoning.length > 0);
  // format with thinking on: the reasoning is free, the constraint waits for </think>, which this
  // model never writes, so everything is reasoning and no content is forced.
  const f = await ollama.chat({
    model: 'thinker', messages: [{ role: 'user', content: 'why?' }], think: true, format: 'json', stream: false,
    options: { temperature: 0, num_predict: 16 },
  });
  assert.equal(f.message.content, '');
  assert.equal(f.message.thinking, thinking);
});

test('the real Qwen3 template with think true: reasoning is split once the model closes it', async () => {
  // The random model does not write <think> itself, so its words stay content; the request is
  // still accepted (the template supports thinking) and enable_thinking reaches the template.
  const on = await ollama.chat({ model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], think: true, stream: false, options: { num_predict: 1 } });
  const off = await ollama.chat({ model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], think: false, stream: false, options: { num_predict: 1 } });
  // think:false makes the Qwen3 template write an empty <think></think> block into the prompt.
  assert.ok(off.prompt_eval_count > on.prompt_eval_count);
});

test('a prompt longer than the context is truncated and the reply says so', async () => {
  const long = 'Once upon a time there was a little dog. '.repeat(120);
  const r = await ollama.generate({ model: 'stories', prompt: long, stream: false, options: { num_ctx: 128, num_predict: 4 } });
  assert.equal(r.truncated, true);
  assert.ok(r.truncated_tokens > 0);
  assert.ok(r.prompt_eval_count <= 96);
  const short = await ollama.generate({ model: 'stories', prompt: 'hi', stream: false, options: { num_ctx: 128, num_predict: 4 } });
  assert.equal(short.truncated, undefined);
  const o = await openai.chat.completions.create({ model: 'stories', messages: [{ role: 'user', content: long }], max_tokens: 2 });
  assert.equal(o.truncated, true);
});

test('show lists the template capabilities: tools and thinking for Qwen3, neither for stories', async () => {
  assert.deepEqual((await ollama.show({ model: 'qwen3' })).capabilities, ['completion', 'tools', 'thinking']);
  assert.deepEqual((await ollama.show({ model: 'stories' })).capabilities, ['completion']);
});
