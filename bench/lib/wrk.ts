/** Runs wrk and reads its report (requests/s, latency percentiles, errors). */
import { execFile } from 'node:child_process';
import { benchAbort } from './abort.js';

export interface WrkOptions {
  readonly url: string;
  readonly threads: number;
  readonly connections: number;
  readonly durationS: number;
  /** Per-request timeout (wrk's default 2 s would count slow 1 MiB responses as errors). */
  readonly timeoutS?: number;
}

export interface WrkResult {
  readonly requestsPerSec: number;
  readonly requests: number;
  /** Milliseconds. */
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly latencyMaxMs: number;
  readonly transferPerSecBytes: number;
  /** Socket errors (connect/read/write/timeout) plus non-2xx/3xx responses. */
  readonly errors: number;
  readonly errorDetail: string;
}

export function runWrk(opts: WrkOptions, signal: AbortSignal = benchAbort.signal): Promise<WrkResult> {
  const args = [
    `-t${opts.threads}`,
    `-c${opts.connections}`,
    `-d${opts.durationS}s`,
    `--timeout`,
    `${opts.timeoutS ?? 10}s`,
    '--latency',
    opts.url,
  ];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { maxBuffer: 1 << 20, signal }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`wrk ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        return;
      }
      try {
        resolve(parseWrk(stdout));
      } catch (e) {
        reject(new Error(`${(e as Error).message}\n--- wrk output ---\n${stdout}${stderr}`));
      }
    });
  });
}

const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`wrk: cannot read duration "${text}"`);
  return Number(m[1]) * TIME_UNITS[m[2]!]!;
}

export function parseWrk(out: string): WrkResult {
  const num = (re: RegExp, what: string): string => {
    const m = re.exec(out);
    if (!m) throw new Error(`wrk: no ${what} in output`);
    return m[1]!;
  };
  const rps = Number(num(/^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec'));
  const requests = Number(num(/^\s*(\d+) requests in/m, 'request count'));
  const p50 = ms(num(/^\s+50%\s+(\S+)/m, '50% latency'));
  const p99 = ms(num(/^\s+99%\s+(\S+)/m, '99% latency'));
  const max = ms(num(/^\s+Latency\s+\S+\s+\S+\s+(\S+)/m, 'max latency'));
  const tm = /^Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB|TB)/m.exec(out);
  const transfer = tm ? Number(tm[1]) * SIZE_UNITS[tm[2]!]! : 0;
  let errors = 0;
  const details: string[] = [];
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (sock) {
    const n = Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]);
    errors += n;
    if (n > 0) details.push(sock[0]);
  }
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) {
    errors += Number(non2xx[1]);
    details.push(non2xx[0]);
  }
  return {
    requestsPerSec: rps,
    requests,
    latencyP50Ms: p50,
    latencyP99Ms: p99,
    latencyMaxMs: max,
    transferPerSecBytes: transfer,
    errors,
    errorDetail: details.join('; '),
  };
}
