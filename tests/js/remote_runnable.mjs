// LangChain.js's RemoteRunnable against a running `chainkit serve`.
// Usage: node remote_runnable.mjs BASE_URL [TOKEN]
// Prints one JSON object: each call's result, for tests/server/test_langserve_js.py to check.
import { RemoteRunnable } from "@langchain/core/runnables/remote";

const [base, token] = process.argv.slice(2);
// a generous timeout: the suite shares a small machine
const options = { timeout: 300000, ...(token ? { headers: { Authorization: `Bearer ${token}` } } : {}) };
const remote = (name) => new RemoteRunnable({ url: `${base}/chains/${name}/`, options });

const message = (m) => ({ type: m._getType(), class: m.constructor.name, content: m.content });

async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

async function failure(call) {
  try {
    await call();
    return null;
  } catch (error) {
    return String(error.message);
  }
}

const song = remote("song");
const extract = remote("extract");
const reply = remote("langserve_reply");
const songInput = { topic: "green tea" };
const extractInput = { text: "I love sunny days at the beach." };
const replyInput = { text: "hello there" };

const result = {
  song: {
    invoke: await song.invoke(songInput),
    batch: await song.batch([songInput, { topic: "coffee" }]),
    stream: await collect(await song.stream(songInput)),
  },
  extract: {
    invoke: await extract.invoke(extractInput),
    batch: await extract.batch([extractInput]),
    stream: await collect(await extract.stream(extractInput)),
  },
  reply: {
    invoke: message(await reply.invoke(replyInput)),
    batch: (await reply.batch([replyInput])).map(message),
    stream: (await collect(await reply.stream(replyInput))).map(message),
  },
  errors: {
    missing: await failure(() => song.invoke({ topc: "x" })),
    unknown: await failure(() => remote("sonng").invoke(songInput)),
  },
};
process.stdout.write(JSON.stringify(result));
