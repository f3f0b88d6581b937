// One-line WebSocket client for the demo (Node 20 has no global WebSocket; this uses the
// repo's `ws` dev dependency): node demo/ws-client.mjs ws://127.0.0.1:6767/app/ws "hello"
// Prints every message received, sends each further argument, then closes with 1000.
import WebSocket from 'ws';

const [url = 'ws://127.0.0.1:6767/app/ws', ...messages] = process.argv.slice(2);
const ws = new WebSocket(url, { perMessageDeflate: false });
let pending = messages.length === 0 ? ['hello from ws-client'] : messages;
ws.on('open', () => console.log(`open ${url}`));
ws.on('message', (data) => {
  console.log(`< ${data}`);
  const next = pending.shift();
  if (next !== undefined) {
    console.log(`> ${next}`);
    ws.send(next);
  } else {
    ws.close(1000, 'bye');
  }
});
ws.on('close', (code, reason) => console.log(`closed ${code} ${reason}`));
ws.on('unexpected-response', (_req, res) => {
  console.log(`refused: HTTP ${res.statusCode}`);
  process.exit(1);
});
ws.on('error', (err) => {
  console.error(String(err));
  process.exit(1);
});
