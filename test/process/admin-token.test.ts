/**
 * Admin exposure through the real bin/m2gw: a non-loopback [admin] listen is refused by
 * `check` and `start` unless allow_remote = true; then every endpoint wants the bearer token,
 * and `m2gw status` sends it from the config.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { promisify } from 'node:util';
import { Daemon, getText, gwToml, m2gwBin, startWorld, type World } from './support.js';

const execFileP = promisify(execFile);
const TOKEN = 'test-token-0123456789abcdef';

async function cli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [m2gwBin, ...args], { timeout: 30_000, env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

function withAdmin(toml: string, admin: string): string {
  return toml.replace(/\[admin\]\nlisten = "[^"]*"\n/, `[admin]\n${admin}\n`);
}

function authGet(url: string, token: string | null): Promise<{ status: number; body: string }> {
  return fetch(url, { headers: token === null ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) }).then(
    async (r) => ({ status: r.status, body: await r.text() }),
  );
}

describe('admin listener exposure', () => {
  let world: World;
  let daemon: Daemon | null = null;

  before(async () => {
    world = await startWorld();
  });

  after(async () => {
    await daemon?.kill();
    await world?.stop();
  });

  test('check and start refuse a non-loopback listen without allow_remote', async () => {
    const toml = withAdmin(gwToml(world), `listen = "0.0.0.0:${world.adminPort}"`);
    await fsp.writeFile(world.configFile, toml);
    const check = await cli(['check', '--config', world.configFile]);
    assert.equal(check.code, 1, check.stdout + check.stderr);
    assert.match(check.stderr, /admin\.listen: "0\.0\.0\.0:\d+" is not a loopback address/);
    const start = await cli(['start', '--config', world.configFile]);
    assert.equal(start.code, 1);
    assert.match(start.stderr, /allow_remote = true/);

    const noToken = withAdmin(gwToml(world), `listen = "0.0.0.0:${world.adminPort}"\nallow_remote = true`);
    await fsp.writeFile(world.configFile, noToken);
    const check2 = await cli(['check', '--config', world.configFile]);
    assert.equal(check2.code, 1);
    assert.match(check2.stderr, /admin\.allow_remote: needs a bearer token/);
  });

  test('with allow_remote and a token, every endpoint wants the token; m2gw status sends it', async () => {
    const toml = withAdmin(gwToml(world), `listen = "0.0.0.0:${world.adminPort}"\nallow_remote = true\ntoken = "${TOKEN}"`);
    daemon = await Daemon.start(world, toml);
    const base = `http://127.0.0.1:${world.adminPort}`;
    for (const p of ['/healthz', '/readyz', '/metrics', '/status', '/nope']) {
      const anon = await getText(base + p);
      assert.equal(anon.status, 401, p);
      assert.equal((await authGet(base + p, 'wrong-token-0123456789abcdef')).status, 401, p);
      assert.equal((await authGet(base + p, TOKEN.slice(0, -1))).status, 401, p);
      const ok = await authGet(base + p, TOKEN);
      assert.equal(ok.status, p === '/nope' ? 404 : 200, `${p}: ${ok.body}`);
    }
    const status = await cli(['status', '--config', world.configFile]);
    assert.equal(status.code, 0, status.stderr);
    const byAddress = await cli(['status', '--admin', `127.0.0.1:${world.adminPort}`]);
    assert.equal(byAddress.code, 1);
    assert.match(byAddress.stderr, /401/);
    const byEnv = await cli(['status', '--admin', `127.0.0.1:${world.adminPort}`], { ...process.env, M2GW_ADMIN_TOKEN: TOKEN });
    assert.equal(byEnv.code, 0, byEnv.stderr);
  });
});
