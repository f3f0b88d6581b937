/**
 * A large streamed upload (Mongrel2 upload.stream = 1) through the real daemon, watching
 * m2gw's memory: real Mongrel2 → `m2gw start --single` (its own process, so its RSS is its
 * own) → a node:http upstream that hashes what it receives. The client streams N MiB of
 * stamped pseudo-random data and hashes what it sends; the two SHA-256 must match.
 *
 * Usage: node dist/bench/stream-upload.js [MiB=1024]
 * Prints the upload time, the SHA-256s, and m2gw's RSS before, at peak and after.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { allocHandlerSpecs, startMongrel2 } from '../test/harness/mongrel2.js';
import { waitFor } from '../test/harness/wait.js';
import { M2GW_BIN } from './lib/paths.js';

const MiB = 1024 * 1024;

async function rssKiB(pid: number): Promise<number> {
  const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
}

async function main(): Promise<number> {
  const sizeMiB = Number(process.argv[2] ?? '1024');
  const size = sizeMiB * MiB;
  const upstream = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      length += c.length;
    });
    req.on('end', () => res.end(JSON.stringify({ length, sha256: hash.digest('hex') })));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upPort = (upstream.address() as { port: number }).port;
  const [spec] = await allocHandlerSpecs(1);
  const m2 = await startMongrel2({
    handlers: [{ name: 'gw', sendSpec: spec!.sendSpec, recvSpec: spec!.recvSpec }],
    routes: [{ path: '/', handler: 'gw' }],
    settings: { 'upload.stream': 1, 'limits.content_length': 65536 },
  });
  const toml = path.join(m2.dir, 'gw.toml');
  await fsp.writeFile(
    toml,
    `[log]\nlevel = "warn"\naccess_log = false\n[[handler]]\nsend_spec = "${spec!.sendSpec}"\nrecv_spec = "${spec!.recvSpec}"\nchroot = "${m2.chroot}"\n` +
      `[upstream.app]\ntype = "http"\nurl = "http://127.0.0.1:${upPort}"\nresponse_timeout = "600s"\nidle_timeout = "600s"\n` +
      `[[route]]\nprefix = "/"\nupstream = "app"\nmax_body = "64GiB"\n`,
  );
  const gw = spawn(process.execPath, [M2GW_BIN, 'start', '--single', '--config', toml], { stdio: ['ignore', 'inherit', 'inherit'] });
  try {
    await waitFor(async () => {
      const res = await fetch(`${m2.url}/`, { method: 'POST', body: 'x' }).catch(() => null);
      return res !== null && res.status === 200;
    }, 15_000, 100, 'm2gw answering');
    const before = await rssKiB(gw.pid!);
    let peak = before;
    const sampler = setInterval(() => void rssKiB(gw.pid!).then((r) => (peak = Math.max(peak, r)), () => undefined), 100);
    const block = randomBytes(MiB);
    const sent = createHash('sha256');
    const t0 = Date.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const req = http.request(`${m2.url}/upload`, { method: 'POST', headers: { 'content-length': String(size) }, agent: false });
      req.on('error', reject);
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(`${res.statusCode} ${body}`));
      });
      let i = 0;
      const write = (): void => {
        while (i < sizeMiB) {
          const piece = Buffer.from(block);
          piece.writeUInt32BE(i++, 0);
          sent.update(piece);
          if (!req.write(piece)) return void req.once('drain', write);
        }
        req.end();
      };
      write();
    });
    const seconds = (Date.now() - t0) / 1000;
    clearInterval(sampler);
    const after = await rssKiB(gw.pid!);
    const sentSha = sent.digest('hex');
    process.stdout.write(
      `upload ${sizeMiB} MiB in ${seconds.toFixed(1)} s (${(sizeMiB / seconds).toFixed(1)} MiB/s)\n` +
        `answer: ${answer}\nsent sha256: ${sentSha}\n` +
        `m2gw RSS: before ${Math.round(before / 1024)} MiB, peak ${Math.round(peak / 1024)} MiB, after ${Math.round(after / 1024)} MiB\n`,
    );
    const ok = answer.startsWith('200 ') && answer.includes(sentSha) && answer.includes(`"length":${size}`);
    process.stdout.write(ok ? 'OK: byte-exact\n' : 'MISMATCH\n');
    return ok ? 0 : 1;
  } finally {
    gw.kill('SIGTERM');
    await m2.stop();
    upstream.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  },
);
