// The official OpenAI client against `strata serve`: node openai-client.mjs BASE_URL MODEL PROMPT [API_KEY] prints, as
// JSON, the model list, a greedy completion, the same completion streamed (its pieces), and a chat reply whole and
// streamed (or the error the server gave for chat).
import OpenAI from 'openai';

const [baseURL, model, prompt, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: apiKey || 'unused', maxRetries: 0 });
const out = {};
out.models = [];
for await (const m of client.models.list()) out.models.push(m.id);
const completion = await client.completions.create({ model, prompt, max_tokens: 24, temperature: 0 });
out.completion = { text: completion.choices[0].text, finish: completion.choices[0].finish_reason, usage: completion.usage };
const stream = await client.completions.create({ model, prompt, max_tokens: 24, temperature: 0, stream: true });
out.pieces = [];
for await (const chunk of stream) out.pieces.push(chunk.choices[0]?.text ?? '');
const messages = [{ role: 'user', content: prompt }];
try {
  const chat = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
  out.chat = { text: chat.choices[0].message.content, role: chat.choices[0].message.role, finish: chat.choices[0].finish_reason };
  const chatStream = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0, stream: true });
  out.chatPieces = [];
  for await (const chunk of chatStream) out.chatPieces.push(chunk.choices[0]?.delta?.content ?? '');
} catch (e) {
  out.chatError = { status: e.status, message: e.message, code: e.code ?? null };
}
console.log(JSON.stringify(out));
