// import.test.mjs — /api/create in Ollama's `files` form naming a safetensors checkpoint: the test
// writes a one-layer random llama with Mistral 7B v0.1's tokenizer.json and tokenizer_config.json
// (../shared/tokenizers/mistral-7b-v0.1), uploads every file as a blob, creates a model from the
// digests, and checks /api/show (a llama with a SentencePiece "llama" vocabulary of 32000) and a
// 3-token greedy generate; then the refusals (a missing config.json, a path as a file name).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { serverLog, startServer, stopServers } from './server.mjs';

const SHARED = process.env.HEARTH_SHARED;
const TESTDATA = process.env.HEARTH_TESTDATA;
const TOKENIZER = path.join(TESTDATA || '', 'tokenizers/mistral-7b-v0.1/tokenizer.json');
const TOKCFG = path.join(SHARED || '', 'tokenizers/mistral-7b-v0.1/tokenizer_config.json');
const skip = !TESTDATA || !fs.existsSync(TOKENIZER) || !fs.existsSync(TOKCFG) ? 'Mistral tokenizer.json not unpacked' : false;

let base, root;

// A safetensors file: 8-byte little-endian header length, the JSON header, then the tensors.
function safetensors(tensors) {
  const header = {};
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([len, Buffer.from(text), ...tensors.map((t) => Buffer.from(t.data.buffer))]);
}

function checkpoint() {
  let state = 12345;
  const rand = () => { state = (Math.imul(state, 1664525) + 1013904223) >>> 0; return (state / 2 ** 32 - 0.5) * 0.1; };
  const tensor = (name, shape, norm) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = norm ? 1 + rand() : rand();
    return { name, shape, data };
  };
  const L = 'model.layers.0.';
  const weights = safetensors([
    tensor('model.embed_tokens.weight', [32000, 64]),
    tensor('model.norm.weight', [64], true),
    tensor(L + 'input_layernorm.weight', [64], true),
    tensor(L + 'post_attention_layernorm.weight', [64], true),
    tensor(L + 'self_attn.q_proj.weight', [64, 64]),
    tensor(L + 'self_attn.k_proj.weight', [32, 64]),
    tensor(L + 'self_attn.v_proj.weight', [32, 64]),
    tensor(L + 'self_attn.o_proj.weight', [64, 64]),
    tensor(L + 'mlp.gate_proj.weight', [128, 64]),
    tensor(L + 'mlp.up_proj.weight', [128, 64]),
    tensor(L + 'mlp.down_proj.weight', [64, 128]),
  ]);
  const config = {
    architectures: ['MistralForCausalLM'], hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1,
    num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 512, rms_norm_eps: 1e-5,
    rope_theta: 10000.0, vocab_size: 32000, bos_token_id: 1, eos_token_id: 2, tie_word_embeddings: true,
  };
  return {
    'config.json': Buffer.from(JSON.stringify(config)),
    'model.safetensors': weights,
    'tokenizer.json': fs.readFileSync(TOKENIZER),
    'tokenizer_config.json': fs.readFileSync(TOKCFG),
  };
}

async function upload(files) {
  const digests = {};
  for (const [name, data] of Object.entries(files)) {
    const digest = 'sha256:' + crypto.createHash('sha256').update(data).digest('hex');
    const r = await fetch(`${base}/api/blobs/${digest}`, { method: 'POST', body: data });
    assert.equal(r.status, 201, `upload ${name}: ${r.status}`);
    digests[name] = digest;
  }
  return digests;
}

async function create(body) {
  const r = await fetch(`${base}/api/create`, { method: 'POST', body: JSON.stringify({ ...body, stream: false }) });
  return { status: r.status, body: await r.json() };
}

before(async () => {
  if (skip) return;
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-import-api-'));
  ({ base } = await startServer(root));
});

after(async () => {
  await stopServers();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

test('create from the blobs of a safetensors checkpoint, show it, generate 3 tokens', { skip }, async () => {
  const digests = await upload(checkpoint());
  const c = await create({ model: 'mistral-tiny', files: digests });
  assert.equal(c.status, 200, JSON.stringify(c.body) + serverLog());
  assert.equal(c.body.status, 'success');
  // The temporary checkpoint folder is gone once the model is stored.
  assert.deepEqual(fs.readdirSync(root).filter((n) => n.startsWith('tmp-import-')), []);

  const show = await (await fetch(`${base}/api/show`, { method: 'POST', body: JSON.stringify({ model: 'mistral-tiny' }) })).json();
  assert.equal(show.details.family, 'llama');
  assert.equal(show.details.format, 'gguf');
  assert.equal(show.model_info['general.architecture'], 'llama');
  assert.equal(show.model_info['llama.vocab_size'], 32000);
  assert.equal(show.model_info['tokenizer.ggml.model'], 'llama');

  const r = await fetch(`${base}/api/generate`, {
    method: 'POST',
    body: JSON.stringify({ model: 'mistral-tiny', prompt: 'Hello world', stream: false, options: { temperature: 0, num_predict: 3 } }),
  });
  const g = await r.json();
  assert.equal(r.status, 200, JSON.stringify(g));
  assert.equal(g.done, true);
  assert.equal(g.eval_count, 3);
  // "<s>", "▁Hello", "▁world": the imported SentencePiece vocabulary tokenized the prompt.
  assert.equal(g.prompt_eval_count, 3);
});

test('create refuses a checkpoint without config.json and a file name with a folder', { skip }, async () => {
  const files = checkpoint();
  const digests = await upload({ 'tokenizer.json': files['tokenizer.json'], 'model.safetensors': files['model.safetensors'] });
  let c = await create({ model: 'broken', files: digests });
  assert.equal(c.status, 400);
  assert.match(c.body.error, /config\.json/);
  c = await create({ model: 'broken', files: { ...digests, '../config.json': digests['tokenizer.json'] } });
  assert.equal(c.status, 400);
  assert.match(c.body.error, /plain name/);
});
