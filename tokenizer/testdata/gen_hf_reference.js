#!/usr/bin/env node
// Reference encodings from Hugging Face's own tokenizers library (the Rust
// implementation, through its Node bindings: `npm install tokenizers@0.23.2`)
// for stress strings built from a seeded generator: mixed scripts, combining
// marks (NFC), whitespace runs, digits, contractions, emoji sequences, rare
// characters (byte fallback) and special-token look-alikes.
//
// Run from tokenizer/testdata (with the package installed where node finds it):
//   node gen_hf_reference.js [count]
// Writes <fixture>/hf_reference.jsonl for qwen3, llama3 and llama2 with one
// {text, ids, ids_with_special, decoded, decoded_skip_special} per line;
// trained/hf_reference.jsonl for the tokenizer that Train makes (trained/ is
// written by `go test -run TestTrainedFixture -update`, run that first); and
// features_{sp,bl,ws}/ (tokenizer.json and reference), small tokenizers built
// here to exercise the components the fixtures do not use. The Go tests only
// read these files.
"use strict";
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");
const { Tokenizer } = require("tokenizers");

// mulberry32: a small seeded PRNG, so the strings are the same every run.
function rng(seed) {
  return function () {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pieces = [
  "the", " the", "The", "THE", " quick", "brown", "fox", "jumps", " over", "lazy", "dog",
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'ſ", "'x", "n't", "'", "\"",
  " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n ", "\u00a0", "\u2003", "\u200b", "\u3000", "\u0085", "\ufeff",
  "0", "7", "42", "123", "1234", "12345678", "3.14", "-1", "1e-9", "٣", "²", "Ⅻ",
  ".", ",", "!", "?", "...", ";", ":", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\", "#", "@", "$", "%", "^", "&", "*", "_", "-", "+", "=", "|", "~", "`",
  "café", "cafe\u0301", "naïve", "Straße", "Ærø", "œuvre", "A\u030a", "\u1100\u1161\u11a8", "한국어", "안녕",
  "中文", "学习", "日本語", "カタカナ", "ひらがな", "。", "、", "，", "！",
  "مرحبا", "עברית", "हिन्दी", "ไทย", "Ελληνικά", "русский",
  "İstanbul", "ΟΔΟΣ", "ΣΑ", "Σ", "ﬁne", "①", "ǅ", "Å", "ｆｕｌｌ",
  "🤖", "🚀", "👨\u200d👩\u200d👧", "🇫🇷", "👍🏽", "\u{1f9e0}", "𝔘𝔫𝔦", "\u{10348}",
  "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>", "<s>", "</s>", "<unk>",
  "<think>", "</think>", "<|bos|>", "<|eos|>", "<|pad|>", "<|im_start", "im_end|>", "<0x0A>", "▁", "Ġ",
  "func", "return", "x ** 2", "def f(x):", "    ", "\t\t", "https://example.com/a?b=1", "a.b@c.org",
];

function makeText(next) {
  const n = 1 + Math.floor(next() * 24);
  let s = "";
  for (let i = 0; i < n; i++) {
    s += pieces[Math.floor(next() * pieces.length)];
    if (next() < 0.2) s += " ";
  }
  return s;
}

async function reference(tokenizerJSON, out, count, seed) {
  const tok = Tokenizer.fromString(tokenizerJSON);
  const next = rng(seed);
  const lines = [];
  const texts = ["", " ", "\n", "a", "  leading", "trailing  ", "x\u0301", "e\u0301\u0301"];
  while (texts.length < count) texts.push(makeText(next));
  for (const text of texts) {
    const plain = await tok.encode(text, null, { addSpecialTokens: false });
    const special = await tok.encode(text, null, { addSpecialTokens: true });
    const ids = plain.getIds();
    lines.push(JSON.stringify({
      text,
      ids,
      ids_with_special: special.getIds(),
      decoded: await tok.decode(ids, false),
      decoded_skip_special: await tok.decode(ids, true),
    }));
  }
  fs.writeFileSync(out, lines.join("\n") + "\n");
  console.log(`${out}: ${lines.length} lines`);
}

// featuresSP is a small SentencePiece-style tokenizer exercising what the
// fixtures do not: Metaspace with prepend_scheme "first", NFKC + Lowercase,
// byte fallback with some byte tokens missing (so unknown characters fall to
// a fused <unk>), added tokens with lstrip, rstrip, single_word and
// normalized, and a template adding <s> and </s>.
function featuresSP() {
  const vocab = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  let next = 3;
  for (let b = 0; b < 256; b++) {
    if (b >= 0xf0 && b <= 0xf4) continue; // no 4-byte sequences: emoji become <unk>
    vocab["<0x" + b.toString(16).toUpperCase().padStart(2, "0") + ">"] = next++;
  }
  for (const c of "▁abcdefghijklmnopqrstuvwxyz0123456789.,!?'-éü中") vocab[c] = next++;
  const merges = [];
  for (const w of ["▁the", "▁quick", "▁brown", "ing", "▁fox", "er", "▁a", "th", "▁un", "known", "▁cat", "▁dog", "▁jump"]) {
    const cs = [...w];
    let cur = cs[0];
    for (const c of cs.slice(1)) {
      const m = cur + c;
      if (!(m in vocab)) vocab[m] = next++;
      if (!merges.some(([a, b]) => a === cur && b === c)) merges.push([cur, c]);
      cur = m;
    }
  }
  const added = (id, content, o) => Object.assign(
    { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false }, o);
  return {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [
      added(0, "<unk>", { special: true }), added(1, "<s>", { special: true }), added(2, "</s>", { special: true }),
      added(next, "<mask>", { lstrip: true, special: true }),
      added(next + 1, "[R]", { rstrip: true, special: true }),
      added(next + 2, "word", { single_word: true }),
      added(next + 3, "ÜBER", { normalized: true }),
    ],
    normalizer: { type: "Sequence", normalizers: [{ type: "NFKC" }, { type: "Lowercase" }] },
    pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: true },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] }, "</s>": { id: "</s>", ids: [2], tokens: ["</s>"] } },
    },
    decoder: { type: "Sequence", decoders: [{ type: "ByteFallback" }, { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: true }, { type: "Fuse" }] },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
}

// featuresBL reuses the trained byte-level model under other components:
// NFD + StripAccents + Strip + Replace normalizers, string Splits with the
// MergedWithNext and Contiguous behaviors, Digits, a GPT-2 ByteLevel step
// with add_prefix_space, RobertaProcessing, and added tokens beyond the
// model's vocabulary.
function featuresBL(trained) {
  const t = JSON.parse(trained);
  const n = Object.keys(t.model.vocab).length;
  t.normalizer = { type: "Sequence", normalizers: [
    { type: "NFD" }, { type: "StripAccents" }, { type: "Strip", strip_left: true, strip_right: false },
    { type: "Replace", pattern: { String: "``" }, content: "\"" }] };
  t.pre_tokenizer = { type: "Sequence", pretokenizers: [
    { type: "Split", pattern: { String: "--" }, behavior: "MergedWithNext", invert: false },
    { type: "Split", pattern: { String: "  " }, behavior: "Contiguous", invert: false },
    { type: "Digits", individual_digits: true },
    { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true }] };
  t.post_processor = { type: "RobertaProcessing", sep: ["<|eos|>", 257], cls: ["<|bos|>", 256], trim_offsets: true, add_prefix_space: true };
  t.added_tokens.push({ id: n, content: "<mask>", single_word: false, lstrip: true, rstrip: false, normalized: false, special: true });
  t.added_tokens.push({ id: n + 1, content: "[SEP]", single_word: false, lstrip: false, rstrip: true, normalized: false, special: false });
  return t;
}

// featuresWS reuses the trained model with no byte-level step at all:
// Whitespace pre-tokenization, characters outside the vocabulary dropped
// (no unk token), and no decoder (tokens joined by spaces).
function featuresWS(trained) {
  const t = JSON.parse(trained);
  t.pre_tokenizer = { type: "Sequence", pretokenizers: [{ type: "Whitespace" }, { type: "Digits", individual_digits: false }] };
  t.post_processor = null;
  t.decoder = null;
  return t;
}

async function main() {
  const count = Number(process.argv[2] || 400);
  const here = __dirname;
  let seed = 1;
  for (const name of ["qwen3", "llama3", "llama2"]) {
    const json = zlib.gunzipSync(fs.readFileSync(path.join(here, name, "tokenizer.json.gz"))).toString("utf8");
    await reference(json, path.join(here, name, "hf_reference.jsonl"), count, seed++);
  }
  const trainedPath = path.join(here, "trained", "tokenizer.json");
  const trained = fs.readFileSync(trainedPath, "utf8");
  await reference(trained, path.join(here, "trained", "hf_reference.jsonl"), count, seed++);
  const features = { features_sp: featuresSP(), features_bl: featuresBL(trained), features_ws: featuresWS(trained) };
  for (const [name, tok] of Object.entries(features)) {
    fs.mkdirSync(path.join(here, name), { recursive: true });
    const json = JSON.stringify(tok, null, 1) + "\n";
    fs.writeFileSync(path.join(here, name, "tokenizer.json"), json);
    await reference(json, path.join(here, name, "hf_reference.jsonl"), count, seed++);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
