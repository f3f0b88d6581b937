/**
 * Issue 9 item 5, the supported scale-out: several Mongrel2 servers feeding one m2gw. Two
 * Mongrel2 "hosts", each in its own network namespace with its own address, and m2gw in a
 * third, joined by veth pairs (we run as root in CI; `ip netns` is required). m2gw has one
 * [[handler]] per server and answers each server's clients on that server, although both
 * number their connections from the same small integers.
 *
 * Without root or `ip`, the same topology over loopback with separate processes (logged).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startMongrel2, type Mongrel2Instance } from '../harness/mongrel2.js';
import { freePorts } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';
import { m2gwBin, repoRoot } from './support.js';

const execFileP = promisify(execFile);
const TAG = `m2fi${process.pid % 100000}`;

async function ip(...args: string[]): Promise<void> {
  await execFileP('ip', args);
}

async function netnsAvailable(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  try {
    await ip('netns', 'add', `${TAG}-probe`);
    await ip('netns', 'del', `${TAG}-probe`);
    return true;
  } catch {
    return false;
  }
}

/** Runs a command in a namespace (or here when ns is null); resolves with stdout. */
async function run(ns: string | null, cmd: string, args: string[]): Promise<string> {
  const [c, a] = ns === null ? [cmd, args] : ['ip', ['netns', 'exec', ns, cmd, ...args]];
  const { stdout } = await execFileP(c, a, { timeout: 20_000 });
  return stdout;
}

interface Site {
  ns: string | null;
  /** The Mongrel2 host's address as m2gw sees it. */
  addr: string;
  m2: Mongrel2Instance;
}

describe('several Mongrel2 servers feeding one m2gw (fan-in)', () => {
  let useNetns = false;
  const sites: Site[] = [];
  let gwNs: string | null = null;
  let gw: ChildProcess | null = null;
  let upstream: ChildProcess | null = null;
  let gwLog = '';
  let dir = '';

  before(async () => {
    useNetns = await netnsAvailable();
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'm2gw-fanin-'));
    const [sendPort, recvPort, httpPort, upPort] = useNetns ? [9997, 9996, 6767, 8080] : await freePorts(4);
    if (useNetns) {
      gwNs = `${TAG}-gw`;
      await ip('netns', 'add', gwNs);
      await run(gwNs, 'ip', ['link', 'set', 'lo', 'up']);
      for (const i of [1, 2]) {
        const ns = `${TAG}-m${i}`;
        await ip('netns', 'add', ns);
        await run(ns, 'ip', ['link', 'set', 'lo', 'up']);
        // A veth pair per Mongrel2 host: 10.203.<i>.1 on its side, .2 on m2gw's.
        await ip('link', 'add', `${TAG}a${i}`, 'type', 'veth', 'peer', 'name', `${TAG}b${i}`);
        await ip('link', 'set', `${TAG}a${i}`, 'netns', ns);
        await ip('link', 'set', `${TAG}b${i}`, 'netns', gwNs);
        await run(ns, 'ip', ['addr', 'add', `10.203.${i}.1/24`, 'dev', `${TAG}a${i}`]);
        await run(ns, 'ip', ['link', 'set', `${TAG}a${i}`, 'up']);
        await run(gwNs, 'ip', ['addr', 'add', `10.203.${i}.2/24`, 'dev', `${TAG}b${i}`]);
        await run(gwNs, 'ip', ['link', 'set', `${TAG}b${i}`, 'up']);
      }
    } else {
      process.stderr.write('# fan-in: no root or no `ip netns`: testing over loopback with separate processes\n');
    }
    for (const i of [1, 2]) {
      const ns = useNetns ? `${TAG}-m${i}` : null;
      const addr = useNetns ? `10.203.${i}.1` : '127.0.0.1';
      // Over loopback the two servers need distinct ports; in namespaces they may (and do) share them.
      const [s, r, h] = useNetns ? [sendPort!, recvPort!, httpPort!] : await freePorts(3);
      const m2 = await startMongrel2({
        handlers: [{ name: 'gw', sendSpec: `tcp://${addr}:${s}`, recvSpec: `tcp://${addr}:${r}` }],
        routes: [{ path: '/', handler: 'gw' }],
        ...(ns === null ? {} : { netns: ns }),
        bindAddr: addr,
        port: h,
      });
      sites.push({ ns, addr, m2 });
    }
    // The upstream and m2gw live on m2gw's "host".
    const upScript = `require('http').createServer((q, s) => { let n = 0; q.on('data', (c) => n += c.length); q.on('end', () => s.end('upstream saw ' + q.url + ' host ' + q.headers.host)); }).listen(${upPort}, '127.0.0.1', () => console.log('listening'))`;
    upstream = spawn(useNetns ? 'ip' : process.execPath, useNetns ? ['netns', 'exec', gwNs!, process.execPath, '-e', upScript] : ['-e', upScript], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => upstream!.stdout!.once('data', () => resolve()));
    const toml = sites
      .map(
        (s) => `[[handler]]\nsend_spec = "${s.m2.handlers[0]!.sendSpec}"\nrecv_spec = "${s.m2.handlers[0]!.recvSpec}"\nchroot = "${s.m2.chroot}"\n`,
      )
      .join('\n');
    const file = path.join(dir, 'gw.toml');
    await fsp.writeFile(file, `[log]\nlevel = "info"\n${toml}\n[upstream.app]\ntype = "http"\nurl = "http://127.0.0.1:${upPort}"\n[[route]]\nprefix = "/"\nupstream = "app"\n`);
    const args = [m2gwBin, 'start', '--single', '--config', file];
    gw = spawn(useNetns ? 'ip' : process.execPath, useNetns ? ['netns', 'exec', gwNs!, process.execPath, ...args] : args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    gw.stdout!.on('data', (c: Buffer) => (gwLog += c.toString()));
    gw.stderr!.on('data', (c: Buffer) => (gwLog += c.toString()));
    await waitFor(() => gwLog.includes('m2gw ready'), 15_000, 50, 'm2gw ready');
  });

  after(async () => {
    gw?.kill('SIGTERM');
    upstream?.kill('SIGTERM');
    for (const s of sites) await s.m2.stop();
    if (useNetns) {
      for (const ns of [`${TAG}-m1`, `${TAG}-m2`, `${TAG}-gw`]) await ip('netns', 'del', ns).catch(() => undefined);
    }
    await fsp.rm(dir, { recursive: true, force: true });
  });

  test('clients of both servers, concurrently, each get their own answer from their own server', async () => {
    const curl = async (site: Site, tag: string): Promise<string> =>
      run(site.ns, 'curl', ['-s', '-m', '10', '-H', `Host: site${sites.indexOf(site) + 1}`, `${site.m2.url}/fan/${tag}`]);
    const jobs: Array<Promise<[string, string]>> = [];
    for (let k = 0; k < 10; k++) {
      for (const site of sites) {
        const tag = `s${sites.indexOf(site) + 1}-${k}`;
        jobs.push(curl(site, tag).then((body) => [tag, body]));
      }
    }
    const answers = await Promise.all(jobs);
    for (const [tag, body] of answers) {
      const n = tag.slice(1, 2);
      assert.equal(body, `upstream saw /fan/${tag} host site${n}`, `${tag}\n${gwLog.slice(-2000)}`);
    }
    // Both servers' handler sockets really crossed to m2gw's host.
    for (const s of sites) assert.match(s.m2.handlers[0]!.sendSpec, new RegExp(`^tcp://${s.addr.replace(/\./g, '\\.')}:`));
    if (useNetns) assert.notEqual(sites[0]!.addr, sites[1]!.addr);
  });
});
