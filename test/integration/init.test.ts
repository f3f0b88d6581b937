/**
 * `m2gw init` as a new user runs it: the pair it writes loads with the real `m2sh load`,
 * passes `m2gw check` (alone and against the compiled Mongrel2 config), and serves
 * requests end to end: browser → real Mongrel2 → `m2gw start` → an HTTP app and PHP-FPM.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { request, sha256 } from '../harness/http-client.js';
import { allocHandlerSpecs, m2shLoad, runMongrel2InDir, type Mongrel2Instance } from '../harness/mongrel2.js';
import { findPhpFpm, startPhpFpm, type PhpFpm } from '../harness/php-fpm.js';
import { freePort } from '../harness/ports.js';
import { startHttpUpstream, type HttpUpstreamInstance } from '../harness/upstream-http.js';
import { waitFor } from '../harness/wait.js';
import { m2gwBin } from '../process/support.js';

const execFileP = promisify(execFile);

async function m2gw(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [m2gwBin, ...args], { cwd, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('m2gw init', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'm2gw-init-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('refuses to run without an upstream, and never overwrites without --force', async () => {
    const dir = path.join(root, 'force');
    const none = await m2gw(['init', '--dir', dir], root);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /give --http URL, --php DOCUMENT_ROOT, or both/);

    const first = await m2gw(['init', '--http', 'http://127.0.0.1:3000', '--dir', dir], root);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^wrote .*\/mongrel2\.conf$/m);
    const conf = await readFile(path.join(dir, 'mongrel2.conf'), 'utf8');
    await writeFile(path.join(dir, 'gw.toml'), '# edited by the operator\n');

    const again = await m2gw(['init', '--http', 'http://127.0.0.1:4000', '--dir', dir], root);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /mongrel2\.conf and .*gw\.toml already exist; nothing written \(--force replaces\)/);
    assert.equal(await readFile(path.join(dir, 'mongrel2.conf'), 'utf8'), conf, 'untouched');
    assert.equal(await readFile(path.join(dir, 'gw.toml'), 'utf8'), '# edited by the operator\n', 'untouched');

    const forced = await m2gw(['init', '--http', 'http://127.0.0.1:4000', '--dir', dir, '--force'], root);
    assert.equal(forced.code, 0, forced.stderr);
    const conf2 = await readFile(path.join(dir, 'mongrel2.conf'), 'utf8');
    const uuid = (text: string): string | undefined => /uuid="([0-9a-f-]{36})"/.exec(text)?.[1];
    assert.ok(uuid(conf2) !== undefined && uuid(conf2) !== uuid(conf), 'a fresh server uuid each time');
    assert.match(await readFile(path.join(dir, 'gw.toml'), 'utf8'), /url = "http:\/\/127\.0\.0\.1:4000"/);
  });

  describe('the generated pair, end to end through Mongrel2', { skip: findPhpFpm() === null ? 'php-fpm is not installed (scripts/install-deps.sh)' : false }, () => {
    let app: HttpUpstreamInstance;
    let fpm: PhpFpm;
    let m2: Mongrel2Instance | undefined;
    let gw: ChildProcess | undefined;
    let dir: string;
    let port: number;
    let output = '';

    before(async () => {
      [app, fpm] = await Promise.all([startHttpUpstream(), startPhpFpm()]);
      dir = path.join(root, 'site');
      const docroot = path.join(root, 'public');
      await mkdir(docroot);
      await writeFile(path.join(docroot, 'index.php'), '<?php echo "php says hi via ", $_SERVER["SCRIPT_NAME"], "\\n";');
      const [spec] = await allocHandlerSpecs(1);
      port = await freePort();
      const init = await m2gw(
        ['init', '--http', app.url, '--php', docroot, '--fpm', fpm.address, '--dir', dir, '--port', String(port), '--send-spec', spec!.sendSpec, '--recv-spec', spec!.recvSpec],
        root,
      );
      assert.equal(init.code, 0, init.stderr);
      output = init.stdout;
    });

    after(async () => {
      if (gw && gw.exitCode === null && gw.signalCode === null) {
        const exited = new Promise((resolve) => gw!.once('exit', resolve));
        gw.kill('SIGTERM');
        await exited;
      }
      await m2?.stop();
      await Promise.all([app?.close(), fpm?.stop()]);
    });

    test('m2sh load accepts it; m2gw check passes, alone and against config.sqlite', async () => {
      assert.match(output, /^ {2}\/php\/ → PHP-FPM/m);
      await m2shLoad(dir); // throws on any [ERROR] from m2sh
      const alone = await m2gw(['check', '--config', 'gw.toml'], dir);
      assert.equal(alone.code, 0, alone.stderr);
      assert.equal(alone.stderr, '');
      const both = await m2gw(['check', '--config', 'gw.toml', '--mongrel2', 'config.sqlite'], dir);
      assert.equal(both.code, 0, both.stderr);
      assert.equal(both.stderr, '', 'no disagreement, not even a warning');
      assert.match(both.stdout, /OK .* against config\.sqlite \(1 Mongrel2 handler\(s\), 1 route\(s\)\)$/m);
    });

    test('serves the HTTP app and PHP through a real Mongrel2', async () => {
      const conf = await readFile(path.join(dir, 'mongrel2.conf'), 'utf8');
      const uuid = /uuid="([^"]+)"/.exec(conf)![1]!;
      const sendSpec = /send_spec="([^"]+)"/.exec(conf)![1]!;
      const recvSpec = /recv_spec="([^"]+)"/.exec(conf)![1]!;
      assert.match(output, new RegExp(`mongrel2 config\\.sqlite ${uuid}`), 'init prints how to start this Mongrel2');
      m2 = await runMongrel2InDir(dir, uuid, port, [{ name: 'm2gw', sendSpec, recvSpec }]);
      const child = spawn(process.execPath, [m2gwBin, 'start', '--config', 'gw.toml'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      gw = child;
      let log = '';
      child.stdout?.on('data', (c: Buffer) => (log += c.toString()));
      child.stderr?.on('data', (c: Buffer) => (log += c.toString()));
      const url = `http://127.0.0.1:${port}`;
      const first = await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`m2gw exited ${child.exitCode}:\n${log}`);
          const r = await request(`${url}/echo/x?y=1`, { timeoutMs: 2_000 }).catch(() => null);
          return r?.status === 200 ? r : null;
        },
        30_000,
        100,
        'a 200 through Mongrel2 and m2gw',
      ).catch((err: unknown) => {
        throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- m2gw ---\n${log}`);
      });
      assert.equal((JSON.parse(first!.body.toString()) as { url: string }).url, '/echo/x?y=1');

      const php = await request(`${url}/php/index.php`);
      assert.equal(php.status, 200, php.body.toString());
      assert.equal(php.body.toString(), 'php says hi via /php/index.php\n');
      const index = await request(`${url}/php/`);
      assert.equal(index.status, 200, 'the directory index');

      if (m2.chrooted) {
        // Larger than limits.content_length: Mongrel2 spools it to upload.temp_store inside the
        // chroot and m2gw streams the file; it only can if the pair agrees on chroot and store.
        // (Unprivileged, mongrel2 does not chroot and writes to the host's /tmp instead.)
        const body = Buffer.alloc(300_000, 7);
        const up = await request(`${url}/echo/upload`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
        assert.equal(up.status, 200, up.body.toString());
        const echoed = JSON.parse(up.body.toString()) as { bodyLength: number; bodySha256: string };
        assert.equal(echoed.bodyLength, body.length);
        assert.equal(echoed.bodySha256, sha256(body));
      }
    });
  });
});
