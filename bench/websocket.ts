/**
 * The websocket scenario (bench/run.sh websocket): WebSocket echo through
 * Mongrel2 + m2gw against nginx proxying WebSockets to the same app, and the app direct.
 *   - round trips per second: 50 connections, each sending a 32-byte message and waiting
 *     for its echo, for --duration seconds;
 *   - throughput: 4 connections echoing 1 MiB messages (MiB/s of echoed payload).
 * Both front ends run one process (m2gw workers = 1, nginx worker_processes 1; Mongrel2 is
 * one process too); the load generator is this process, the same for every variant.
 * Prints a table and m2gw/nginx ratios; writes bench/results/websocket-latest.json.
 *
 * Usage: node dist/bench/websocket.js [--duration 10] [--connections 50]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { allocHandlerSpecs, startMongrel2 } from '../test/harness/mongrel2.js';
import { freePort } from '../test/harness/ports.js';
import { waitForTcp } from '../test/harness/wait.js';
import { BENCH_DIST, M2GW_BIN, RESULTS_DIR } from './lib/paths.js';

const { values } = parseArgs({
  options: { duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' } },
});
const DURATION_MS = Number(values.duration) * 1000;
const CONNECTIONS = Number(values.connections);
const children: ChildProcess[] = [];

function log(line: string): void {
  process.stdout.write(line + '\n');
}

function firstJsonLine(child: ChildProcess): Promise<{ port: number }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)) as { port: number });
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}`)));
  });
}

async function startNginx(dir: string, appPort: number): Promise<number> {
  const port = await freePort();
  fs.mkdirSync(path.join(dir, 'logs'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${appPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h;
      proxy_buffering off;
    }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'logs/error.log')], { stdio: 'ignore' });
  children.push(child);
  await waitForTcp('127.0.0.1', port, 10_000);
  return port;
}

async function startM2gwChain(dir: string, appPort: number): Promise<{ url: string; stop(): Promise<void> }> {
  const [spec] = await allocHandlerSpecs(1);
  const m2 = await startMongrel2({
    handlers: [{ name: 'gw', sendSpec: spec!.sendSpec, recvSpec: spec!.recvSpec }],
    routes: [{ path: '/', handler: 'gw' }],
    settings: { 'zeromq.threads': 1 },
  });
  const config = path.join(dir, 'gw.toml');
  fs.writeFileSync(
    config,
    `[gateway]
workers = 1
[log]
level = "info"
access_log = false
[[handler]]
send_spec = "${spec!.sendSpec}"
recv_spec = "${spec!.recvSpec}"
chroot = "${m2.chroot}"
[upstream.app]
type = "http"
url = "http://127.0.0.1:${appPort}"
websocket_max_message = "64MiB"
[[route]]
prefix = "/"
upstream = "app"
`,
  );
  const child = spawn(process.execPath, [M2GW_BIN, 'start', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('m2gw ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`m2gw exited ${code}: ${out}`)));
  });
  return {
    url: m2.url,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      await m2.stop();
    },
  };
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 << 20 });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Each connection: send, await the echo, repeat until the deadline. Returns echoes and payload bytes. */
async function echoLoop(url: string, connections: number, payload: Buffer, durationMs: number): Promise<{ echoes: number; bytes: number; seconds: number }> {
  const sockets = await Promise.all(Array.from({ length: connections }, () => open(url)));
  // Warm-up: one second of the same load, not counted.
  const runFor = async (ms: number): Promise<number> => {
    const deadline = Date.now() + ms;
    const counts = await Promise.all(
      sockets.map(
        (ws) =>
          new Promise<number>((resolve) => {
            let n = 0;
            const onMessage = (): void => {
              n++;
              if (Date.now() >= deadline) {
                ws.off('message', onMessage);
                resolve(n);
              } else {
                ws.send(payload, { binary: true });
              }
            };
            ws.on('message', onMessage);
            ws.send(payload, { binary: true });
          }),
      ),
    );
    return counts.reduce((a, b) => a + b, 0);
  };
  await runFor(1000);
  const t0 = performance.now();
  const echoes = await runFor(durationMs);
  const seconds = (performance.now() - t0) / 1000;
  for (const ws of sockets) ws.terminate();
  return { echoes, bytes: echoes * payload.length, seconds };
}

interface Row {
  variant: string;
  roundTripsPerS: number;
  mibPerS: number;
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-bench-ws-'));
  const app = spawn(process.execPath, [path.join(BENCH_DIST, 'ws-echo-app.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(app);
  const { port: appPort } = await firstJsonLine(app);
  const nginxPort = await startNginx(path.join(tmp, 'nginx'), appPort);
  const chain = await startM2gwChain(tmp, appPort);
  const targets: Array<[string, string]> = [
    ['app-direct', `ws://127.0.0.1:${appPort}/echo`],
    ['nginx', `ws://127.0.0.1:${nginxPort}/echo`],
    ['m2gw', chain.url.replace(/^http/, 'ws') + '/echo'],
  ];
  const small = Buffer.alloc(32, 0x61);
  const big = Buffer.alloc(1 << 20, 0x62);
  const rows: Row[] = [];
  try {
    for (const [variant, url] of targets) {
      log(`${variant}: ${CONNECTIONS} connections × 32-byte round trips, ${DURATION_MS / 1000}s`);
      const rt = await echoLoop(url, CONNECTIONS, small, DURATION_MS);
      log(`${variant}: 4 connections × 1 MiB echoes, ${DURATION_MS / 1000}s`);
      const tp = await echoLoop(url, 4, big, DURATION_MS);
      rows.push({ variant, roundTripsPerS: rt.echoes / rt.seconds, mibPerS: tp.bytes / (1 << 20) / tp.seconds });
    }
  } finally {
    await chain.stop().catch(() => undefined);
    for (const c of children) c.kill('SIGTERM');
  }
  log('\nvariant        round trips/s   1 MiB echo MiB/s');
  for (const r of rows) log(`${r.variant.padEnd(14)} ${r.roundTripsPerS.toFixed(0).padStart(13)}   ${r.mibPerS.toFixed(1).padStart(16)}`);
  const m2gw = rows.find((r) => r.variant === 'm2gw')!;
  const nginx = rows.find((r) => r.variant === 'nginx')!;
  const ratios = { roundTrips: m2gw.roundTripsPerS / nginx.roundTripsPerS, throughput: m2gw.mibPerS / nginx.mibPerS };
  log(`\nm2gw / nginx: round trips ${ratios.roundTrips.toFixed(2)}, 1 MiB throughput ${ratios.throughput.toFixed(2)}`);
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(
    path.join(RESULTS_DIR, 'websocket-latest.json'),
    JSON.stringify({ date: new Date().toISOString(), durationS: DURATION_MS / 1000, connections: CONNECTIONS, cpus: os.availableParallelism(), rows, ratios }, null, 2) + '\n',
  );
  fs.rmSync(tmp, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    for (const c of children) c.kill('SIGKILL');
    process.stderr.write(`websocket bench failed: ${String(err)}\n`);
    process.exit(1);
  },
);
