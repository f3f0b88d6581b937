/**
 * `m2gw start|stop|reload|status`: the CLI side. stop/reload signal the pid in the
 * pid file; status (and reload's confirmation) ask the admin listener.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'smol-toml';
import { formatStatus, type StatusReport } from '../admin/status.js';
import { splitHostPort } from '../admin/admin-server.js';
import { loadConfig, parseConfigText } from '../config/load.js';
import { formatProblems } from '../errors.js';
import { processAlive, readPidFile } from './pid-file.js';

export interface ControlOptions {
  config?: string;
  pidFile?: string;
  admin?: string;
}

/** Thrown for a failure the CLI reports as one line and exit 1. */
export class ControlError extends Error {}

export async function startCommand(file: string, single: boolean): Promise<number> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    console.error(`${file}: cannot read ${file}: ${code === 'ENOENT' ? 'file not found' : String(err)}`);
    return 1;
  }
  const { config, problems } = parseConfigText(text, file);
  if (problems.length > 0) console.error(formatProblems(file, problems));
  if (!config) return 1;
  // Imported here, not at the top: the supervisor never loads the gateway and its
  // upstream clients (undici, FastCGI), which only workers run (~10 MiB of RSS).
  if (single) await (await import('./single.js')).runSingleProcess(config);
  else await (await import('./supervisor.js')).runSupervisor(path.resolve(file), text, config);
  return 0;
}

interface ControlSettings {
  pidFile: string | null;
  admin: string | null;
  /** [admin] token (or token_file), or M2GW_ADMIN_TOKEN: sent as a bearer token. */
  adminToken: string | null;
  drainTimeoutMs: number | null;
}

/**
 * pid_file and admin.listen from the config. A config with errors elsewhere must
 * still let the operator stop the daemon, so fall back to reading the raw TOML.
 */
function controlSettings(opts: ControlOptions): ControlSettings {
  const envToken = process.env['M2GW_ADMIN_TOKEN'];
  const out: ControlSettings = { pidFile: opts.pidFile ?? null, admin: opts.admin ?? null, adminToken: envToken || null, drainTimeoutMs: null };
  if (!opts.config) return out;
  const { config } = loadConfig(opts.config);
  if (config) {
    out.pidFile ??= config.gateway.pidFile;
    out.admin ??= config.admin?.listen ?? null;
    out.adminToken ??= config.admin?.token ?? null;
    out.drainTimeoutMs = config.gateway.drainTimeoutMs;
    return out;
  }
  try {
    const doc = parse(fs.readFileSync(opts.config, 'utf8')) as Record<string, unknown>;
    const gw = doc.gateway as Record<string, unknown> | undefined;
    const admin = doc.admin as Record<string, unknown> | undefined;
    if (typeof gw?.pid_file === 'string') out.pidFile ??= path.resolve(path.dirname(opts.config), gw.pid_file);
    if (typeof admin?.listen === 'string') out.admin ??= admin.listen;
    if (typeof admin?.token === 'string') out.adminToken ??= admin.token;
    else if (typeof admin?.token_file === 'string') out.adminToken ??= readTokenFile(path.resolve(path.dirname(opts.config), admin.token_file));
  } catch {
    // unreadable: the caller says what is missing
  }
  return out;
}

function pidOf(opts: ControlOptions): number {
  const s = controlSettings(opts);
  if (!s.pidFile) throw new ControlError('no pid file: set [gateway] pid_file in the config or pass --pid-file');
  const pid = readPidFile(s.pidFile);
  if (!processAlive(pid)) throw new ControlError(`pid ${pid} from ${s.pidFile} is not running (stale pid file)`);
  return pid;
}

export async function stopCommand(opts: ControlOptions & { wait: boolean }): Promise<number> {
  const pid = pidOf(opts);
  process.kill(pid, 'SIGTERM');
  if (!opts.wait) {
    console.log(`sent SIGTERM to m2gw (pid ${pid})`);
    return 0;
  }
  const drain = controlSettings(opts).drainTimeoutMs ?? 30_000;
  const deadline = Date.now() + drain + 15_000;
  while (processAlive(pid)) {
    if (Date.now() > deadline) {
      console.error(`m2gw (pid ${pid}) still running ${Math.round((drain + 15_000) / 1000)} s after SIGTERM`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`m2gw (pid ${pid}) stopped`);
  return 0;
}

/**
 * How long reload waits for the admin listener to answer at all after the signal. It is the
 * new config's address, which may be one the daemon does not listen on: `[admin] listen`
 * changed and the reload failed (the old listener stays), or the daemon has no listener there.
 */
const RELOAD_UNREACHABLE_MS = 10_000;
/** How long reload waits for the result once the listener answers (a reload starts workers). */
const RELOAD_RESULT_MS = 60_000;

export async function reloadCommand(opts: ControlOptions): Promise<number> {
  const pid = pidOf(opts);
  const { admin, adminToken } = controlSettings(opts);
  // The result is the first reload that ended after the signal, told by its time (the daemon
  // and this command share the host's clock), not by comparing with a status fetched before:
  // the new config's listener may not be up until the reload has moved it there.
  const sentAt = Date.now();
  process.kill(pid, 'SIGHUP');
  if (!admin) {
    console.log(`sent SIGHUP to m2gw (pid ${pid}); the log says whether the new config was applied`);
    return 0;
  }
  let answered = false;
  let lastError = '';
  for (;;) {
    const waited = Date.now() - sentAt;
    if (waited > (answered ? RELOAD_RESULT_MS : RELOAD_UNREACHABLE_MS)) break;
    await new Promise((r) => setTimeout(r, 100));
    const now = await fetchStatus(admin, adminToken).catch((err: unknown) => {
      lastError = err instanceof Error ? err.message : String(err);
      return null;
    });
    if (!now) continue;
    answered = true;
    const last = now.lastReload;
    if (last && Date.parse(last.at) >= sentAt) {
      if (last.result === 'ok') {
        console.log(`reloaded: generation ${now.generation} (pid ${pid})`);
        return 0;
      }
      console.error(`reload ${last.result}: ${last.message}`);
      return 1;
    }
  }
  if (!answered) {
    console.log(
      `sent SIGHUP to m2gw (pid ${pid}), but could not ask whether the new config was applied (${lastError}); see the log` +
        ' (if [admin] listen changed, the reload may have failed to move it)',
    );
    return 0;
  }
  console.error(`sent SIGHUP but saw no reload result within ${RELOAD_RESULT_MS / 1000} s; see the log`);
  return 1;
}

export async function statusCommand(opts: ControlOptions & { json: boolean }): Promise<number> {
  const { admin, adminToken } = controlSettings(opts);
  if (!admin) {
    throw new ControlError('status needs the admin listener: add [admin] listen = "127.0.0.1:9180" to the config (or pass --admin host:port)');
  }
  const report = await fetchStatus(admin, adminToken);
  console.log(opts.json ? JSON.stringify(report, null, 2) : formatStatus(report));
  return 0;
}

function readTokenFile(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

export async function fetchStatus(listen: string, token: string | null = null): Promise<StatusReport> {
  const { host, port } = splitHostPort(listen);
  const target = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${target}:${port}/status`;
  let res: Response;
  try {
    const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
    res = await fetch(url, { signal: AbortSignal.timeout(5_000), headers });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? String(err);
    throw new ControlError(`cannot reach the admin listener at ${url}: ${cause} (is m2gw running?)`);
  }
  if (res.status === 401) throw new ControlError(`${url} answered 401: set [admin] token or token_file in the config, or M2GW_ADMIN_TOKEN`);
  if (!res.ok) throw new ControlError(`${url} answered ${res.status}`);
  return (await res.json()) as StatusReport;
}
