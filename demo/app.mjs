// The demo's sample HTTP app: what a Rails/puma or Node app looks like to m2gw.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 3000);
const server = http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.url.startsWith('/app/stream')) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let i = 0;
        const timer = setInterval(() => {
          res.write(`tick ${++i} at ${new Date().toISOString()}\n`);
          if (i === 5) {
            clearInterval(timer);
            res.end();
          }
        }, 300);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          { hello: 'from the sample HTTP app', method: req.method, url: req.url, headers: req.headers, bodyBytes: Buffer.concat(chunks).length },
          null,
          2,
        ) + '\n',
      );
    });
  })
  .listen(port, '127.0.0.1', () => console.log(`sample app on http://127.0.0.1:${port}`));

// WebSocket echo on /app/ws (what an ActionCable or socket.io endpoint is to m2gw).
const wss = new WebSocketServer({ server, path: '/app/ws', perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  ws.send(`welcome ${req.headers['x-forwarded-for'] ?? ''} (subprotocol "${ws.protocol}")`);
  ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo: ${data}`, { binary: isBinary }));
});
