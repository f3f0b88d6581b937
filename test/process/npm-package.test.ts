/**
 * The npm package as a user gets it: `npm pack` on a checkout with no dist/ (prepack
 * builds), `npm install -g --prefix` of the tarball (production dependencies only, no
 * TypeScript), then the installed `m2gw`: --version, check on the shipped example config,
 * init + check --mongrel2 (sql.js's WebAssembly loads from the install), and start serving
 * a request through a real Mongrel2.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { request } from '../harness/http-client.js';
import { m2shLoad } from '../harness/mongrel2.js';
import { waitFor } from '../harness/wait.js';
import { packageVersion, packFromCleanCopy, productionDependencies, run } from './package-support.js';
import { gwToml, startWorld } from './support.js';

describe('npm pack + npm install -g', () => {
  let tmp: string;
  let tarball: string;
  let prefix: string;
  let m2gw: string;
  /** Only the Node running the tests on PATH: nothing from the checkout leaks in. */
  let env: NodeJS.ProcessEnv;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'm2gw-npm-'));
    prefix = path.join(tmp, 'prefix');
    m2gw = path.join(prefix, 'bin', 'm2gw');
    env = { ...process.env, PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin:/usr/sbin:/sbin`, NODE_ENV: 'production' };
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('npm pack builds in prepack and ships built JavaScript only', async () => {
    const packed = await packFromCleanCopy(tmp);
    assert.equal(packed.output.code, 0, packed.output.stderr);
    tarball = packed.tarball;
    assert.ok(existsSync(tarball), `${tarball} (npm pack said: ${packed.output.stdout})`);
    const list = (await run('tar', ['-tzf', tarball])).stdout.split('\n').filter((l) => l !== '');
    for (const f of ['bin/m2gw', 'dist/src/cli.js', 'dist/src/config/mongrel2-db.js', 'config/gw.toml', 'config/mongrel2.conf', 'systemd/m2gw.service', 'contrib/grafana/m2gw.json', 'contrib/prometheus/m2gw-rules.yml', 'contrib/logrotate/m2gw', 'package.json', 'README.md']) {
      assert.ok(list.includes(`package/${f}`), `${f} is in the tarball`);
    }
    const stray = list.filter((f) => /\.ts$|\.map$|^package\/(src|test|bench|dist\/test|scripts|packaging|node_modules)\//.test(f));
    assert.deepEqual(stray, [], 'no sources, tests, maps or build scripts');
  });

  test('installs into a prefix with production dependencies only', async () => {
    assert.ok(tarball, 'packed');
    const installed = await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', tarball], { env });
    assert.equal(installed.code, 0, installed.stderr);
    const pkg = path.join(prefix, 'lib', 'node_modules', 'm2gw');
    for (const dep of await productionDependencies()) assert.ok(existsSync(path.join(pkg, 'node_modules', dep)) || existsSync(path.join(prefix, 'lib', 'node_modules', dep)), `${dep} installed`);
    for (const dev of ['typescript', 'eslint', '@types/node', 'yaml']) assert.ok(!existsSync(path.join(pkg, 'node_modules', dev)), `dev dependency ${dev} not installed`);
  });

  test('m2gw --version and m2gw check on the shipped example config', async () => {
    const version = await run(m2gw, ['--version'], { env });
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), await packageVersion());
    const example = path.join(prefix, 'lib', 'node_modules', 'm2gw', 'config', 'gw.toml');
    const check = await run(m2gw, ['check', '--config', example], { env });
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /gw\.toml: OK \(1 handler\(s\), 2 upstream\(s\), 2 route\(s\)\)/);
  });

  test('m2gw init + m2sh load + m2gw check --mongrel2 with the installed package', async () => {
    const site = path.join(tmp, 'site');
    const init = await run(m2gw, ['init', '--http', 'http://127.0.0.1:3000', '--dir', site], { env });
    assert.equal(init.code, 0, init.stderr);
    await m2shLoad(site);
    const check = await run(m2gw, ['check', '--config', 'gw.toml', '--mongrel2', 'config.sqlite'], { env, cwd: site });
    assert.equal(check.code, 0, check.stderr);
    assert.equal(check.stderr, '');
    assert.match(check.stdout, /against config\.sqlite \(1 Mongrel2 handler\(s\), 1 route\(s\)\)/);
  });

  test('m2gw start serves through a real Mongrel2 and stops cleanly', async () => {
    const world = await startWorld();
    await writeFile(world.configFile, gwToml(world, { workers: 1 }));
    const child = spawn(m2gw, ['start', '--config', world.configFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr.on('data', (c: Buffer) => (log += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const res = await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`m2gw exited ${child.exitCode}`);
          const r = await request(`${world.m2.url}/echo/installed`, { timeoutMs: 2_000 }).catch(() => null);
          return r?.status === 200 ? r : null;
        },
        30_000,
        100,
        'a 200 through the installed m2gw',
      ).catch((err: unknown) => {
        throw new Error(`${err instanceof Error ? err.message : String(err)}\n${log}`);
      });
      assert.equal((JSON.parse(res!.body.toString()) as { url: string }).url, '/echo/installed');
      child.kill('SIGTERM');
      assert.equal(await exited, 0, log);
    } finally {
      child.kill('SIGKILL');
      await world.stop();
    }
  });
});
