// Reference chat renderings and assistant-token masks from transformers.js
// (@huggingface/transformers, whose apply_chat_template renders with
// @huggingface/jinja and tokenizes with @huggingface/tokenizers: an
// implementation independent of gotune's Jinja engine and tokenizer), for
// the Go test tokenizer/chat_reference_test.go.
//
// Run from tokenizer/testdata/chat after `npm ci`:
//   node gen_chat_reference.mjs
// Writes chat_reference.json: one case per (template, conversation) with
// the rendered text, its token ids (no special tokens added: the template
// writes them) and the assistant mask, or the error the template raised.
//
// The mask is defined here without gotune's rule (the first special token
// after the generation prompt ends a turn): for assistant message i, the
// turn starts where the conversation before it, rendered with
// add_generation_prompt, ends, and runs through the first occurrence of
// the template's end-of-turn string (named per template below) after the
// message's content. Token k is in the mask when it lies inside a turn, found
// by encoding the text up to each boundary; the script checks that those
// encodings are prefixes of the whole one, so no token straddles a boundary.
import { readFileSync, writeFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { PreTrainedTokenizer } from "@huggingface/transformers";

function load(dir) {
  let json;
  try {
    json = JSON.parse(readFileSync(`../${dir}/tokenizer.json`, "utf8"));
  } catch {
    json = JSON.parse(gunzipSync(readFileSync(`../${dir}/tokenizer.json.gz`)).toString("utf8"));
  }
  const config = JSON.parse(readFileSync(`../${dir}/tokenizer_config.json`, "utf8"));
  return { json, config };
}

// Llama-3-8B-Instruct's template (the fixture's is the base model's, which
// always ends with the assistant header).
const llama3Instruct =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
// ChatML as Qwen2 writes it, with a default system prompt.
const chatml =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
// Mistral-7B-Instruct-v0.1's template: strict user/assistant alternation.
const mistral =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

const templates = [
  { name: "qwen3", tokenizer: "qwen3", template: null, eot: "<|im_end|>" },
  { name: "llama3", tokenizer: "llama3", template: null, eot: "<|eot_id|>" },
  { name: "llama3-instruct", tokenizer: "llama3", template: llama3Instruct, eot: "<|eot_id|>" },
  { name: "chatml", tokenizer: "qwen3", template: chatml, eot: "<|im_end|>" },
  { name: "mistral", tokenizer: "llama2", template: mistral, eot: "</s>" },
];

const m = (role, content) => ({ role, content });
const conversations = [
  [m("user", "What is 2+2?"), m("assistant", "4")],
  [m("system", "You answer briefly."), m("user", "Add 17 and 25."), m("assistant", "42"),
    m("user", "And 3 + 4?"), m("assistant", "7")],
  [m("user", "Name three capitals."), m("assistant", "Paris, Rome and Madrid.\n\nAll in Europe."),
    m("user", "  One more, in Asia?  "), m("assistant", " Tokyo. "), m("user", "Thanks!"), m("assistant", "You're welcome 🙂")],
  [m("system", "Réponds en français."), m("user", "Quelle est la capitale de l'Allemagne ?"), m("assistant", "Berlin — évidemment.")],
  [m("user", "Sort: 10, 9, 100"), m("assistant", "9, 10, 100"), m("user", "Reverse \"abc\"."), m("assistant", "cba")],
  // Two user turns in a row: a template that requires alternation raises.
  [m("user", "Hello"), m("user", "Are you there?"), m("assistant", "Yes.")],
];

const cases = [];
for (const t of templates) {
  const { json, config } = load(t.tokenizer);
  const tok = new PreTrainedTokenizer(json, config);
  const opts = (extra) => ({ tokenize: false, ...(t.template ? { chat_template: t.template } : {}), ...extra });
  const encode = (s) => tok.encode(s, { add_special_tokens: false });
  for (const messages of conversations) {
    const c = { template: t.name, tokenizer: t.tokenizer, chat_template: t.template ?? undefined, messages };
    let text;
    try {
      text = tok.apply_chat_template(messages, opts({}));
    } catch (e) {
      c.error = String(e.message ?? e);
      cases.push(c);
      continue;
    }
    const ids = encode(text);
    const mask = new Array(ids.length).fill(0);
    const at = (b) => {
      const pre = encode(text.slice(0, b));
      for (let k = 0; k < pre.length; k++) {
        if (pre[k] !== ids[k]) throw new Error(`${t.name}: a token straddles offset ${b} of ${JSON.stringify(text)}`);
      }
      return pre.length;
    };
    messages.forEach((msg, i) => {
      if (msg.role !== "assistant") return;
      const prefix = tok.apply_chat_template(messages.slice(0, i), opts({ add_generation_prompt: true }));
      if (!text.startsWith(prefix)) throw new Error(`${t.name}: the conversation before message ${i} renders differently`);
      const content = text.indexOf(msg.content.trim(), prefix.length);
      const end = text.indexOf(t.eot, content);
      if (content < 0 || end < 0) throw new Error(`${t.name}: message ${i}: content or end of turn not found`);
      for (let k = at(prefix.length); k < at(end + t.eot.length); k++) mask[k] = 1;
    });
    Object.assign(c, { text, ids, mask });
    cases.push(c);
  }
}
writeFileSync("chat_reference.json", JSON.stringify({ generator: "gen_chat_reference.mjs", cases }, null, 1) + "\n");
console.log(`chat_reference.json: ${cases.length} cases`);
