/**
 * For the tests that build and install m2gw's packages: the npm tarball, commands run the
 * way a user types them, and a lock so two test runs on one machine (several checkouts)
 * never dpkg -i / --purge the same package at the same time.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { sleep } from '../harness/wait.js';
import { repoRoot } from './support.js';

const execFileP = promisify(execFile);

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; never throws for a non-zero exit (the caller asserts on code and output). */
export async function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  try {
    const { stdout, stderr } = await execFileP(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 150_000, maxBuffer: 32 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: `${e.stderr ?? ''}${typeof e.code === 'number' ? '' : `\n${e.message ?? ''}`}` };
  }
}

interface PackageJson {
  version: string;
  dependencies?: Record<string, string>;
}

async function packageJson(): Promise<PackageJson> {
  return JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as PackageJson;
}

export async function packageVersion(): Promise<string> {
  return (await packageJson()).version;
}

export async function productionDependencies(): Promise<string[]> {
  return Object.keys((await packageJson()).dependencies ?? {});
}

const NOT_SOURCES = new Set(['node_modules', 'dist', '.git', '.tmp', 'demo-run', 'test', 'bench']);

/**
 * `npm pack` as in a fresh checkout: the sources are copied (no dist/) next to the
 * checkout's node_modules, so prepack's build runs for real, without touching the
 * dist/ the running test suite uses.
 */
export async function packFromCleanCopy(into: string): Promise<{ tarball: string; output: RunResult }> {
  const copy = path.join(into, 'checkout');
  await mkdir(copy);
  for (const entry of await readdir(repoRoot)) {
    if (NOT_SOURCES.has(entry) || entry.endsWith('.tgz') || entry.endsWith('.deb')) continue;
    await cp(path.join(repoRoot, entry), path.join(copy, entry), { recursive: true });
  }
  await symlink(path.join(repoRoot, 'node_modules'), path.join(copy, 'node_modules'));
  const output = await run('npm', ['pack', '--pack-destination', into], { cwd: copy });
  const tarball = path.join(into, `m2gw-${await packageVersion()}.tgz`);
  await rm(copy, { recursive: true, force: true });
  return { tarball, output };
}

/** Packs the already-built checkout (dist/ as the suite built it), for tests that only need a tarball. */
export async function packBuilt(into: string): Promise<{ tarball: string; output: RunResult }> {
  const output = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', into], { cwd: repoRoot });
  return { tarball: path.join(into, `m2gw-${await packageVersion()}.tgz`), output };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `fn` holding a machine-wide lock (a directory in /tmp; a dead holder's lock is taken over). */
export async function withMachineLock<T>(name: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const dir = path.join('/tmp', `${name}.lock`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(dir);
      await writeFile(path.join(dir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(await readFile(path.join(dir, 'pid'), 'utf8').catch(() => ''));
      if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${dir} is held by pid ${holder} for longer than ${timeoutMs} ms`);
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
