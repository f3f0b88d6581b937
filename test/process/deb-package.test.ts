/**
 * The Debian package: packaging/deb/build.sh builds m2gw_<version>_<arch>.deb, `dpkg -i`
 * installs it (as root: CI runs as root, and there this must run, not skip), the installed
 * m2gw answers --version, the m2gw user exists and can read its conffile, the installed
 * unit passes `systemd-analyze verify`, and `dpkg --purge` leaves nothing behind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sleep } from '../harness/wait.js';
import { packageVersion, packBuilt, productionDependencies, run, withMachineLock, type RunResult } from './package-support.js';
import { repoRoot } from './support.js';

const HAVE_DPKG = existsSync('/usr/bin/dpkg-deb');
const IS_ROOT = process.getuid?.() === 0;
const INSTALLED = ['/usr/bin/m2gw', '/usr/lib/m2gw', '/etc/m2gw', '/lib/systemd/system/m2gw.service', '/etc/logrotate.d/m2gw'];

/** dpkg refuses at once while another dpkg/apt holds its lock: wait for it rather than fail. */
async function dpkg(args: string[]): Promise<RunResult> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const r = await run('dpkg', args);
    if (r.code === 0 || !/lock/i.test(r.stderr) || Date.now() > deadline) return r;
    await sleep(500);
  }
}

describe('Debian package', { skip: HAVE_DPKG ? false : 'not a Debian system: no dpkg-deb' }, () => {
  let tmp: string;
  let deb: string;
  let version: string;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'm2gw-deb-'));
    version = await packageVersion();
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('packaging/deb/build.sh builds m2gw_<version>_<arch>.deb', async () => {
    const packed = await packBuilt(tmp);
    assert.equal(packed.output.code, 0, packed.output.stderr);
    const built = await run('bash', [path.join(repoRoot, 'packaging/deb/build.sh'), '--out', tmp, packed.tarball]);
    assert.equal(built.code, 0, built.stderr);
    deb = built.stdout.trim().split('\n').pop() ?? '';
    const arch = (await run('dpkg-deb', ['--field', deb, 'Architecture'])).stdout.trim();
    const nativeModule = existsSync(path.join(repoRoot, 'node_modules', 'zeromq')) && (await productionDependencies()).includes('zeromq');
    assert.equal(arch, nativeModule ? (await run('dpkg', ['--print-architecture'])).stdout.trim() : 'all', 'arch-specific only with a native module');
    assert.equal(deb, path.join(tmp, `m2gw_${version}_${arch}.deb`));

    const info = await run('dpkg-deb', ['--field', deb, 'Package', 'Version', 'Architecture', 'Depends']);
    assert.match(info.stdout, new RegExp(`^Version: ${version.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(info.stdout, /^Depends: nodejs \(>= 20\.18\)/m, 'engines.node as the nodejs dependency');
    const conffiles = (await run('sh', ['-c', `dpkg-deb --ctrl-tarfile '${deb}' | tar -xO ./conffiles`])).stdout;
    assert.deepEqual(conffiles.trim().split('\n'), ['/etc/m2gw/gw.toml', '/etc/logrotate.d/m2gw']);
    const files = (await run('dpkg-deb', ['--contents', deb])).stdout;
    for (const f of ['./usr/bin/m2gw', './usr/lib/m2gw/bin/m2gw', './usr/lib/m2gw/dist/src/cli.js', './usr/lib/m2gw/node_modules/sql.js/dist/sql-wasm.wasm', './etc/m2gw/gw.toml', './lib/systemd/system/m2gw.service']) {
      assert.ok(files.includes(` ${f}\n`), `${f} in the package`);
    }
    for (const dep of await productionDependencies()) assert.ok(files.includes(` ./usr/lib/m2gw/node_modules/${dep}/package.json\n`), `dependency ${dep} in the package`);
    assert.doesNotMatch(files, /node_modules\/(typescript|eslint|yaml|@types\/node)\//, 'no dev dependencies');
    assert.doesNotMatch(files, /\.\/usr\/lib\/m2gw\/(?!node_modules\/)\S*\.(ts|map)\n/, 'no TypeScript of our own: it runs as built');
  });

  test('dpkg -i: m2gw runs, its user reads the conffile, the unit verifies; dpkg --purge removes it all', async (t) => {
    assert.ok(deb, 'built');
    if (!IS_ROOT) {
      t.skip('cannot install: dpkg -i needs root (the build and the package contents were checked)');
      return;
    }
    await withMachineLock('m2gw-deb-test', 150_000, async () => {
      const before = await run('dpkg-query', ['-W', '-f', '${Status}', 'm2gw']);
      assert.ok(!/install ok installed/.test(before.stdout), 'm2gw is already installed on this machine; this test installs and purges it: dpkg --purge m2gw first');
      const userExisted = (await run('getent', ['passwd', 'm2gw'])).code === 0;
      try {
        const installed = await dpkg(['-i', deb]);
        assert.equal(installed.code, 0, installed.stderr);
        assert.match(installed.stdout, /edit \/etc\/m2gw\/gw\.toml, then: systemctl enable --now m2gw/);

        const v = await run('/usr/bin/m2gw', ['--version']);
        assert.equal(v.code, 0, v.stderr);
        assert.equal(v.stdout.trim(), version);

        const user = (await run('getent', ['passwd', 'm2gw'])).stdout.trim().split(':');
        assert.equal(user[0], 'm2gw', 'postinst created the system user');
        assert.ok(Number(user[2]) < 1000, `a system uid, got ${user[2]}`);
        assert.equal(user[6], '/usr/sbin/nologin');
        const conf = statSync('/etc/m2gw/gw.toml');
        assert.equal(conf.mode & 0o777, 0o640);
        assert.equal(conf.uid, 0);
        const group = (await run('getent', ['group', 'm2gw'])).stdout.split(':')[2];
        assert.equal(String(conf.gid), group, 'group m2gw');
        // What ExecStartPre runs, as the service user.
        const check = await run('runuser', ['-u', 'm2gw', '--', '/usr/bin/m2gw', 'check', '--config', '/etc/m2gw/gw.toml']);
        assert.equal(check.code, 0, check.stderr);
        assert.match(check.stdout, /\/etc\/m2gw\/gw\.toml: OK/);

        const verify = await run('systemd-analyze', ['verify', '/lib/systemd/system/m2gw.service'], { env: { ...process.env, SYSTEMD_LOG_COLOR: '0' } });
        assert.equal(verify.code, 0, verify.stderr);
        assert.equal((verify.stdout + verify.stderr).trim(), '', 'no warnings');
        const conffiles = await run('dpkg-query', ['-W', '-f', '${Conffiles}', 'm2gw']);
        assert.match(conffiles.stdout, /\/etc\/m2gw\/gw\.toml [0-9a-f]{32}/);
      } finally {
        const purged = await dpkg(['--purge', 'm2gw']);
        if (!userExisted) await run('userdel', ['m2gw']);
        assert.equal(purged.code, 0, purged.stderr);
      }
      for (const p of INSTALLED) assert.ok(!existsSync(p), `${p} removed by dpkg --purge`);
      assert.ok(!/install ok installed/.test((await run('dpkg-query', ['-W', '-f', '${Status}', 'm2gw'])).stdout));
      if (!userExisted) assert.notEqual((await run('getent', ['passwd', 'm2gw'])).code, 0, 'the test removed the user it caused');
    });
  });
});
