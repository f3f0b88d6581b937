/**
 * Starts the real m2gw executable (bin/m2gw start) with a generated gw.toml: its own
 * processes (a supervisor and its workers, or one with --single), so their RSS and CPU
 * are theirs, as in production. Node flags (--cpu-prof) reach the workers too: fork()
 * passes the parent's execArgv on.
 */
import fs from 'node:fs';
import path from 'node:path';
import { M2GW_BIN } from './paths.js';
import type { HandlerSpec } from './mongrel2.js';
import { httpGet } from './http-check.js';
import { processTree } from './proc-stats.js';
import { sleep, type ProcessGroup } from './procs.js';

export interface M2gwOptions {
  readonly handler: HandlerSpec;
  /** Mongrel2's chroot on the host (async-upload temp files live under it). */
  readonly chroot: string;
  /** Where gw.toml and logs go. */
  readonly dir: string;
  readonly appUrl?: string;
  readonly fastcgi?: { address: string; documentRoot: string; maxConnections: number; pipeline: number };
  /** The access log (level info, to a file), as a user gets it by default; false: level warn, no access log. */
  readonly accessLog?: boolean;
  /** `[gateway] workers`; absent: the key is not written (default 1). */
  readonly workers?: number | 'auto';
  /** `[gateway] spare_worker = false`; absent: the key is not written (default true). */
  readonly spareWorker?: false;
  /** `m2gw start --single`: one process, no supervisor. */
  readonly single?: boolean;
  /** Extra node flags for m2gw (workers inherit them), e.g. ["--max-semi-space-size=32"]. */
  readonly nodeArgs?: readonly string[];
  /** Directory for `node --cpu-prof` output; absent: no profiling. */
  readonly cpuProfDir?: string;
  /** Another build's bin/m2gw (bench --before-bin); default this checkout's. */
  readonly bin?: string;
  /** URL (through Mongrel2) that must answer 200 before the gateway counts as ready. */
  readonly probeUrl: string;
}

export interface M2gwInstance {
  readonly pid: number;
  readonly configFile: string;
  readonly logFile: string;
  /** Process states and the log tail, for an error message. */
  diagnose(): string;
  stop(): Promise<void>;
}

export function m2gwToml(o: M2gwOptions, logFile: string): string {
  const lines: string[] = [];
  if (o.workers !== undefined || o.spareWorker === false) {
    lines.push('[gateway]');
    if (o.workers !== undefined) lines.push(`workers = ${o.workers === 'auto' ? '"auto"' : o.workers}`);
    if (o.spareWorker === false) lines.push('spare_worker = false');
    lines.push('');
  }
  lines.push(
    '[log]',
    `level = "${o.accessLog === false ? 'warn' : 'info'}"`,
    `access_log = ${o.accessLog === false ? 'false' : 'true'}`,
    `file = ${JSON.stringify(logFile)}`,
    '',
    '[[handler]]',
    `send_spec = "${o.handler.sendSpec}"`,
    `recv_spec = "${o.handler.recvSpec}"`,
    `chroot = ${JSON.stringify(o.chroot)}`,
    '',
  );
  if (o.appUrl) {
    lines.push('[upstream.app]', 'type = "http"', `url = "${o.appUrl}"`, 'connections = 64', '');
  }
  if (o.fastcgi) {
    lines.push(
      '[upstream.php]',
      'type = "fastcgi"',
      `address = "${o.fastcgi.address}"`,
      `document_root = ${JSON.stringify(o.fastcgi.documentRoot)}`,
      `max_connections = ${o.fastcgi.maxConnections}`,
      `pipeline = ${o.fastcgi.pipeline}`,
      '',
      '[[route]]',
      'prefix = "/gw/php/"',
      'upstream = "php"',
      'strip_prefix = true',
      '',
    );
  }
  if (o.appUrl) {
    // 2 GiB: the memory scenario uploads 1 GiB through this route.
    lines.push('[[route]]', 'prefix = "/gw/"', 'upstream = "app"', 'max_body = "2GiB"', '');
  }
  return lines.join('\n');
}

export async function startM2gw(group: ProcessGroup, o: M2gwOptions): Promise<M2gwInstance> {
  fs.mkdirSync(o.dir, { recursive: true });
  const configFile = path.join(o.dir, 'gw.toml');
  const logFile = path.join(o.dir, 'm2gw.log');
  fs.writeFileSync(configFile, m2gwToml(o, logFile));
  const nodeArgs = [...(o.nodeArgs ?? []), ...(o.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : [])];
  const proc = group.spawn('m2gw', process.execPath, [...nodeArgs, o.bin ?? M2GW_BIN, 'start', '--config', configFile, ...(o.single ? ['--single'] : [])], {
    logFile: path.join(o.dir, 'stdout.log'),
  });
  const deadline = Date.now() + (Number(process.env.M2GW_BENCH_START_S) || 45) * 1000;
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`m2gw exited (${String(proc.child.exitCode ?? proc.child.signalCode)})\n${proc.tail()}\n${readTail(logFile)}`);
    }
    const r = await httpGet(o.probeUrl, 2_000).catch(() => null);
    if (r && r.status === 200) break;
    if (Date.now() > deadline) throw new Error(`m2gw not answering ${o.probeUrl} (last: ${r ? r.status : 'no answer'})\n${proc.tail()}\n${readTail(logFile)}`);
    await sleep(100);
  }
  return {
    pid: proc.pid,
    configFile,
    logFile,
    diagnose: () => {
      const alive = proc.child.exitCode === null && proc.child.signalCode === null;
      return `m2gw ${alive ? `running (${processTree(proc.pid).length} processes)` : `exited (${String(proc.child.exitCode ?? proc.child.signalCode)})`}; log: ${readTail(logFile).slice(-1500)}`;
    },
    // A profile is only written on a clean exit, which the drain gives.
    stop: () => proc.stop('SIGTERM', 10_000),
  };
}

function readTail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').slice(-4000);
  } catch {
    return '';
  }
}
