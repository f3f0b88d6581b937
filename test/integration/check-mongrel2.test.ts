/**
 * `m2gw check --mongrel2 config.sqlite` against databases made by the real `m2sh load`:
 * a matching pair passes silently, and each deliberately wrong mongrel2.conf is reported
 * under the gw.toml key (and line) that disagrees.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { m2shLoad } from '../harness/mongrel2.js';
import { m2gwBin } from '../process/support.js';

const execFileP = promisify(execFile);

interface ConfOptions {
  sendSpec?: string;
  recvSpec?: string;
  recvIdent?: string;
  chroot?: string;
  /** A route to a second Handler nobody in gw.toml serves (m2sh stores only routed Handlers). */
  orphanRoute?: boolean;
  settings?: Record<string, string | number>;
}

const SEND = 'tcp://127.0.0.1:19997';
const RECV = 'tcp://127.0.0.1:19996';
const GOOD_SETTINGS = { 'download.flow_control': 1, 'upload.temp_store': '/tmp/upload.XXXXXX', 'limits.content_length': 20480 };

function conf(chroot: string, o: ConfOptions = {}): string {
  const settings = Object.entries(o.settings ?? GOOD_SETTINGS).map(([k, v]) => `  "${k}": ${typeof v === 'number' ? v : `"${v}"`}`);
  return `gw = Handler(send_spec="${o.sendSpec ?? SEND}", send_ident="9d3c5e0a-0000-4000-8000-000000000001",
  recv_spec="${o.recvSpec ?? RECV}", recv_ident="${o.recvIdent ?? ''}")
other = Handler(send_spec="tcp://127.0.0.1:19995", send_ident="9d3c5e0a-0000-4000-8000-000000000002",
  recv_spec="tcp://127.0.0.1:19994", recv_ident="")
main = Server(uuid="check-test", access_log="/logs/access.log", error_log="/logs/error.log",
  chroot="${o.chroot ?? chroot}", pid_file="/run/mongrel2.pid", default_host="localhost", name="main",
  bind_addr="127.0.0.1", port=16767,
  hosts=[Host(name="localhost", routes={
    "/": gw${o.orphanRoute ? ',\n    "/legacy/": other' : ''}
  })])
settings = {
${settings.join(',\n')}
}
servers = [main]
`;
}

// Line numbers matter: the assertions below name them.
function gwToml(chroot: string): string {
  return `[[handler]]
send_spec = "${SEND}"
recv_spec = "${RECV}"
recv_ident = ""
chroot = "${chroot}"
upload_temp_store = "/tmp/upload.XXXXXX"

[upstream.app]
type = "http"
url = "http://127.0.0.1:3000"

[[route]]
prefix = "/"
upstream = "app"
max_body = "100MiB"
`;
}

describe('m2gw check --mongrel2 against m2sh load output', () => {
  let root: string;
  let n = 0;

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'm2gw-check-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** A fresh dir (Mongrel2's chroot, with tmp/), the two files, m2sh load, then m2gw check. */
  async function check(o: ConfOptions, toml?: (chroot: string) => string): Promise<{ code: number; stdout: string; stderr: string }> {
    const dir = path.join(root, `case-${n++}`);
    await mkdir(path.join(dir, 'tmp'), { recursive: true });
    await writeFile(path.join(dir, 'mongrel2.conf'), conf(dir, o));
    await writeFile(path.join(dir, 'gw.toml'), (toml ?? gwToml)(dir));
    await m2shLoad(dir);
    try {
      const { stdout, stderr } = await execFileP(process.execPath, [m2gwBin, 'check', '--config', 'gw.toml', '--mongrel2', 'config.sqlite'], { cwd: dir });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  test('a matching pair: OK, nothing to report', async () => {
    const r = await check({});
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^gw\.toml: OK \(1 handler\(s\), 1 upstream\(s\), 1 route\(s\)\) against config\.sqlite \(1 Mongrel2 handler\(s\), 1 route\(s\)\)$/m);
  });

  test('a bind on * matches m2gw connecting to 127.0.0.1', async () => {
    const r = await check({ sendSpec: 'tcp://*:19997', recvSpec: 'tcp://0.0.0.0:19996' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  test('send_spec that no Handler has: error on handler[0].send_spec, and the route nobody serves', async () => {
    const r = await check({ sendSpec: 'tcp://127.0.0.1:29997' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^gw\.toml:2: handler\[0\]\.send_spec: no Mongrel2 Handler has send_spec "tcp:\/\/127\.0\.0\.1:19997" \(its Handlers: "tcp:\/\/127\.0\.0\.1:29997"\)/m);
    assert.match(r.stderr, /^gw\.toml:1: warning: handler: Mongrel2 sends route "\/" of host "localhost" \(server "main"\) to the Handler with send_spec "tcp:\/\/127\.0\.0\.1:29997".*which no \[\[handler\]\] here serves/m);
    assert.match(r.stderr, /1 disagreement\(s\) with Mongrel2, 1 warning\(s\)/);
  });

  test('recv_spec and recv_ident that differ: errors on their own keys and lines', async () => {
    const spec = await check({ recvSpec: 'tcp://127.0.0.1:29996' });
    assert.equal(spec.code, 1);
    assert.match(spec.stderr, /^gw\.toml:3: handler\[0\]\.recv_spec: Mongrel2's Handler with send_spec "tcp:\/\/127\.0\.0\.1:19997" has recv_spec "tcp:\/\/127\.0\.0\.1:29996": replies would never reach Mongrel2/m);
    const ident = await check({ recvIdent: 'server-a' });
    assert.equal(ident.code, 1);
    assert.match(ident.stderr, /^gw\.toml:4: handler\[0\]\.recv_ident: is "" but Mongrel2's Handler has recv_ident "server-a"/m);
  });

  test('a route to a Handler no [[handler]] serves is reported', async () => {
    const r = await check({ orphanRoute: true });
    assert.equal(r.code, 0, 'a warning: another program may serve that Handler');
    assert.match(r.stderr, /^gw\.toml:1: warning: handler: Mongrel2 sends route "\/legacy\/" of host "localhost" \(server "main"\) to the Handler with send_spec "tcp:\/\/127\.0\.0\.1:19995", recv_spec "tcp:\/\/127\.0\.0\.1:19994", which no \[\[handler\]\] here serves/m);
  });

  test('download.flow_control off or absent', async () => {
    const off = await check({ settings: { ...GOOD_SETTINGS, 'download.flow_control': 0 } });
    assert.match(off.stderr, /^gw\.toml:1: warning: handler: Mongrel2's download\.flow_control is "0" \(off\): set "download\.flow_control": 1/m);
    const { 'download.flow_control': _, ...rest } = GOOD_SETTINGS;
    const absent = await check({ settings: rest });
    assert.match(absent.stderr, /download\.flow_control is not set \(off\)/);
  });

  test('upload.temp_store and chroot that do not fit', async () => {
    const store = await check({ settings: { ...GOOD_SETTINGS, 'upload.temp_store': '/uploads/m2.XXXXXX' } });
    assert.equal(store.code, 1);
    assert.match(store.stderr, /^gw\.toml:6: handler\[0\]\.upload_temp_store: is "\/tmp\/upload\.XXXXXX" but Mongrel2's upload\.temp_store is "\/uploads\/m2\.XXXXXX"/m);
    const chroot = await check({ chroot: '/var/lib/elsewhere' });
    assert.equal(chroot.code, 1);
    assert.match(chroot.stderr, /^gw\.toml:5: handler\[0\]\.chroot: is "\/.*\/case-\d+" but Mongrel2 server "main" has chroot "\/var\/lib\/elsewhere": upload files would not be found/m);
    // Both agree on a temp dir that does not exist in the chroot.
    const spool = (dir: string): string => gwToml(dir).replace('/tmp/upload.XXXXXX', '/spool/upload.XXXXXX');
    const missing = await check({ settings: { ...GOOD_SETTINGS, 'upload.temp_store': '/spool/upload.XXXXXX' } }, spool);
    assert.equal(missing.code, 0, missing.stderr);
    assert.match(missing.stderr, /^gw\.toml:6: warning: handler\[0\]\.upload_temp_store: \/.*\/case-\d+\/spool does not exist: Mongrel2 cannot write upload files there$/m);
  });

  test('a relative chroot is taken from the directory of config.sqlite', async () => {
    const r = await check({ chroot: './' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'mongrel2 started next to config.sqlite chroots there: the same directory');
  });

  test('limits.content_length without upload.temp_store caps max_body', async () => {
    const r = await check({ settings: { 'download.flow_control': 1, 'limits.content_length': 65536 } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^gw\.toml:15: warning: route\[0\]\.max_body: is 100MiB but Mongrel2 refuses bodies over limits\.content_length = 65536 bytes itself \(no upload\.temp_store is set\)/m);
  });

  test('not a Mongrel2 database: one clear line, exit 1', async () => {
    const dir = path.join(root, 'not-a-db');
    await mkdir(dir);
    await writeFile(path.join(dir, 'gw.toml'), gwToml(dir));
    await writeFile(path.join(dir, 'config.sqlite'), 'hello');
    const e = await execFileP(process.execPath, [m2gwBin, 'check', '-c', 'gw.toml', '-m', 'config.sqlite'], { cwd: dir }).catch((err: unknown) => err as { code: number; stderr: string });
    assert.equal('code' in e ? e.code : 0, 1);
    assert.match(e.stderr, /^m2gw: config\.sqlite is not an SQLite database/m);
  });
});
