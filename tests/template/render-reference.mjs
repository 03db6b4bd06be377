// render-reference.mjs — renders every chat template of the shared reference data with
// @huggingface/jinja (the renderer hearth's src/template/ must match byte for byte) over every
// conversation in tests/template/conversations/, and writes one JSON file that test_jinja compares
// against:
//   { generator, now, templates: {name: source}, contexts: {id: context},
//     cases: [{template, context, output | null, error | null}] }
// usage: node render-reference.mjs [--shared DIR] [--out FILE]
// The clock is pinned (strftime_now sees `now`, in UTC) so that dates are reproducible.
import { readFileSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const NOW_MS = Date.UTC(2025, 2, 14, 9, 26, 53); // 2025-03-14 09:26:53 UTC

// Pin the clock, the time zone and the month names before the renderer is loaded.
process.env.TZ = "UTC";
const RealDate = Date;
class FixedDate extends RealDate {
	constructor(...args) {
		super(...(args.length ? args : [NOW_MS]));
	}
	static now() {
		return NOW_MS;
	}
}
globalThis.Date = FixedDate;
const RealDTF = Intl.DateTimeFormat;
Intl.DateTimeFormat = function (locale, options) {
	return new RealDTF(locale ?? "en-US", options);
};

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
	const i = args.indexOf(name);
	return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const shared = resolve(opt("--shared", process.env.HEARTH_SHARED ?? join(repo, "..", "shared")));
const outFile = opt("--out", null);

const { Template } = await import("@huggingface/jinja");
// The package does not export its package.json; read it next to the resolved entry point.
const require = createRequire(import.meta.url);
let pkgDir = dirname(require.resolve("@huggingface/jinja"));
while (!existsSync(join(pkgDir, "package.json"))) pkgDir = dirname(pkgDir);
const version = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")).version;

// Special tokens for the bare .jinja files, by model family (tokenizer_config.json files carry theirs).
const FAMILY_TOKENS = [
	[/^meta-llama-Llama-3/, { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" }],
	[/^(mistralai-|Mistral-)/, { bos_token: "<s>", eos_token: "</s>" }],
	[/^Qwen-/, { eos_token: "<|im_end|>" }],
	[/^deepseek-ai-/, { bos_token: "<｜begin▁of▁sentence｜>", eos_token: "<｜end▁of▁sentence｜>" }],
	[/^microsoft-Phi-3/, { bos_token: "<s>", eos_token: "<|endoftext|>" }],
];

const tokenText = (t) => (t == null ? undefined : typeof t === "string" ? t : t.content);

const templates = {}; // name -> { source, tokens }
const tdir = join(shared, "tokenizers", "chat_templates");
if (existsSync(tdir)) {
	for (const f of readdirSync(tdir).sort()) {
		if (!f.endsWith(".jinja")) continue;
		const fam = FAMILY_TOKENS.find(([re]) => re.test(f));
		templates[`chat_templates/${f}`] = {
			source: readFileSync(join(tdir, f), "utf8"),
			tokens: fam ? fam[1] : {},
		};
	}
}
const kdir = join(shared, "tokenizers");
if (existsSync(kdir)) {
	for (const d of readdirSync(kdir).sort()) {
		const p = join(kdir, d, "tokenizer_config.json");
		if (!existsSync(p)) continue;
		const cfg = JSON.parse(readFileSync(p, "utf8"));
		const tokens = {};
		if (tokenText(cfg.bos_token) !== undefined) tokens.bos_token = tokenText(cfg.bos_token);
		if (tokenText(cfg.eos_token) !== undefined) tokens.eos_token = tokenText(cfg.eos_token);
		const ct = cfg.chat_template;
		if (typeof ct === "string") templates[`${d}/tokenizer_config.json`] = { source: ct, tokens };
		else if (Array.isArray(ct))
			for (const t of ct) templates[`${d}/tokenizer_config.json#${t.name}`] = { source: t.template, tokens };
	}
}
if (Object.keys(templates).length === 0) {
	console.error(`render-reference: no chat templates under ${shared}/tokenizers`);
	process.exit(1);
}

// Conversations: each file gives a context; unless it sets add_generation_prompt itself, it is
// rendered both with and without the generation prompt.
const cdir = join(here, "conversations");
const conversations = readdirSync(cdir)
	.filter((f) => f.endsWith(".json"))
	.sort()
	.map((f) => ({ id: f.replace(/\.json$/, ""), ...JSON.parse(readFileSync(join(cdir, f), "utf8")) }));

const out = { generator: `@huggingface/jinja ${version}`, now: NOW_MS / 1000, templates: {}, contexts: {}, cases: [] };
for (const [name, t] of Object.entries(templates)) {
	out.templates[name] = t.source;
	let compiled = null;
	let compileError = null;
	try {
		compiled = new Template(t.source);
	} catch (e) {
		compileError = String(e.message ?? e);
	}
	for (const conv of conversations) {
		const variants = "add_generation_prompt" in conv.context ? [{}] : [{ add_generation_prompt: true }, { add_generation_prompt: false }];
		for (const v of variants) {
			const ctxId = conv.id + ("add_generation_prompt" in v ? (v.add_generation_prompt ? "+gen" : "-gen") : "");
			const tokId = Object.entries(t.tokens).map(([k, x]) => `${k}=${x}`).join(",");
			const fullId = `${ctxId}|${tokId}`;
			if (!(fullId in out.contexts)) out.contexts[fullId] = { ...t.tokens, ...conv.context, ...v };
			const c = { template: name, context: fullId, output: null, error: null };
			if (compileError) c.error = compileError;
			else {
				try {
					// Render from a JSON round trip: the C side sees exactly this data.
					c.output = compiled.render(JSON.parse(JSON.stringify(out.contexts[fullId])));
				} catch (e) {
					c.error = String(e.message ?? e);
				}
			}
			out.cases.push(c);
		}
	}
}
const text = JSON.stringify(out, null, 1);
if (outFile) writeFileSync(outFile, text);
else process.stdout.write(text);
console.error(
	`render-reference: ${out.cases.length} renders of ${Object.keys(templates).length} templates ` +
		`(${out.cases.filter((c) => c.error).length} raise) with ${out.generator}`,
);
