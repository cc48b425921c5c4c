// Loads GGUF files in llama.cpp (through node-llama-cpp's prebuilt CPU
// binaries) and reports what llama.cpp makes of them, for the Go tests of
// model/gguf (llamacpp_test.go) to compare with gotune's own results.
//
// Usage: node check.mjs request.json response.json
//
// request:  {"models": [{"path": "m.gguf", "lora": "a.gguf" (optional),
//             "contextSize": 128, "prompts": ["text", ...],
//             "greedy": [{"prompt": [ids], "n": 32}, ...],
//             "speed": {"prompt": [ids], "n": 128}, "threads": 1,
//             "probs": [[ids], ...], "vocab": n}, ...]}
// response: {"models": [{"bos": id|null, "eos": id|null, "addBos": bool,
//             "tokens": [[ids], ...], "greedy": [[ids], ...],
//             "probs": [[p per vocabulary id], ...], "decodeTokensPerSecond": n,
//             "prefillTokensPerSecond": n}]}
//
// tokens: llama.cpp's tokenization of each prompt, special tokens written
// in the text recognised, no BOS added. greedy: n tokens chosen by argmax
// (temperature 0), EOS not stopping. probs: the softmax of the logits of
// the token that follows each prompt (temperature 1, no top-k/top-p/min-p).
// decodeTokensPerSecond: greedy decoding speed after speed.prompt (null
// without speed); prefillTokensPerSecond: the prompt's tokens over the
// time to the first generated token. llama.cpp runs on `threads` threads
// (default 1).
import {readFileSync, writeFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const req = JSON.parse(readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const out = {models: []};

for (const m of req.models) {
    const model = await llama.loadModel({modelPath: m.path, gpuLayers: 0});
    const res = {
        bos: model.tokens.bos, eos: model.tokens.eos, addBos: model.tokens.shouldPrependBosToken,
        tokens: [], greedy: [], probs: []
    };
    for (const p of m.prompts ?? [])
        res.tokens.push(Array.from(model.tokenize(p, true)));

    const context = await model.createContext({
        contextSize: m.contextSize ?? 128,
        sequences: 1,
        // One thread by default: llama.cpp's threads wait for each other
        // by spinning, which collapses when another process holds a core.
        threads: m.threads ?? 1,
        ...(m.lora ? {lora: {adapters: [{filePath: m.lora, scale: 1}]}} : {})
    });
    const seq = context.getSequence();
    const greedyOpts = {generateNext: {token: true, options: {temperature: 0}}};
    for (const g of m.greedy ?? []) {
        await seq.clearHistory();
        const prompt = g.prompt;
        let input = [...prompt.slice(0, -1), [prompt[prompt.length - 1], greedyOpts]];
        const tokens = [];
        for (let i = 0; i < g.n; i++) {
            const r = await seq.controlledEvaluate(input);
            const t = r[input.length - 1]?.next?.token;
            if (t == null)
                throw new Error(`no token generated at step ${i}`);
            tokens.push(t);
            input = [[t, greedyOpts]];
        }
        res.greedy.push(tokens);
    }
    if (m.speed != null) {
        // Decoding speed through the ordinary generation loop: the time
        // of tokens 2…n after the prompt (prefill excluded), greedy.
        await seq.clearHistory();
        let count = 0, t0 = 0;
        const start = performance.now();
        for await (const _ of seq.evaluate(m.speed.prompt, {temperature: 0})) {
            if (++count === 1)
                t0 = performance.now();
            if (count === m.speed.n)
                break;
        }
        res.decodeTokensPerSecond = (m.speed.n - 1) / ((performance.now() - t0) / 1000);
        res.prefillTokensPerSecond = m.speed.prompt.length / ((t0 - start) / 1000);
    }
    const probOpts = {generateNext: {probabilities: true, options: {temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1}}};
    for (const prompt of m.probs ?? []) {
        await seq.clearHistory();
        const input = [...prompt.slice(0, -1), [prompt[prompt.length - 1], probOpts]];
        const r = await seq.controlledEvaluate(input);
        const probs = r[input.length - 1]?.next?.probabilities;
        if (probs == null)
            throw new Error("no probabilities returned");
        const dense = new Array(m.vocab).fill(0);
        for (const [id, p] of probs)
            dense[id] = p;
        res.probs.push(dense);
    }
    await context.dispose();
    await model.dispose();
    out.models.push(res);
}
writeFileSync(process.argv[3], JSON.stringify(out));
process.exit(0);
