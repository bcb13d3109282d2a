// Greedy generation with transformers.js from a folder Strata exported (`strata export --format onnx`), as a JavaScript
// user would load it: node generate.mjs DIR PROMPT N prints {"prompt": [ids], "generated": [ids]} as JSON.
import path from 'node:path';
import { env, AutoTokenizer, AutoModelForCausalLM } from '@huggingface/transformers';

const [dir, prompt, n] = process.argv.slice(2);
env.allowRemoteModels = false;
env.localModelPath = path.dirname(path.resolve(dir));
const name = path.basename(path.resolve(dir));
const tokenizer = await AutoTokenizer.from_pretrained(name);
const model = await AutoModelForCausalLM.from_pretrained(name, { dtype: 'fp32', device: 'cpu' });
const inputs = tokenizer(prompt, { add_special_tokens: false });
const output = await model.generate({ ...inputs, max_new_tokens: Number(n), do_sample: false });
const ids = Array.from(inputs.input_ids.data, Number);
const all = Array.from(output.data, Number);
console.log(JSON.stringify({ prompt: ids, generated: all.slice(ids.length) }));
