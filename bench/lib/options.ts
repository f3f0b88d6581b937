/** Command-line flags of bench/run.sh. */
import { parseArgs } from 'node:util';

export const SCENARIOS = ['hello', '1mib', 'accesslog', 'php', 'memory', 'noflow', 'workers'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface Options {
  readonly quick: boolean;
  readonly durationS: number;
  readonly warmupS: number;
  /** wrk runs of warmupS each before every measured run (each one turns over all client connections). */
  readonly warmupRuns: number;
  readonly threads: number;
  readonly repeat: number;
  /** Wait up to this long for the machine to be quiet before each run (0: never wait). */
  readonly quietWaitS: number;
  /** Measure a disturbed run again up to this many times. */
  readonly retries: number;
  readonly connections: number;
  readonly scenarios: ReadonlySet<Scenario>;
  readonly nginxWorkers: string;
  readonly pipelines: readonly number[];
  readonly fpmChildren: number;
  /** Extra m2gw process layouts for the workers scenario: 'single' (--single) or a worker count. */
  readonly workers: ReadonlyArray<number | 'single' | 'auto'>;
  readonly memSizes: readonly number[];
  readonly cpuProf: boolean;
  /** Extra node flags for every m2gw process. */
  readonly m2gwNodeArgs: readonly string[];
  /** Another build's bin/m2gw, measured in the same run as the variants m2gw-before*. */
  readonly beforeBin: string | null;
  readonly json: boolean;
}

export const USAGE = `Usage: bench/run.sh [flags]      (or: node dist/bench/run.js [flags] after npx tsc -p .)

  --quick               4 s runs, 1 s warm-up, memory with 64 MiB and 256 MiB bodies
  --duration S          seconds per measured wrk run (default 10; quick 4)
  --warmup S            seconds of each warm-up wrk run (default 1)
  --warmup-runs N       wrk runs of --warmup seconds before each measured run (default 2):
                        the second starts, as the measured run does, after a turnover of
                        all client connections (bench/README.md, "Warm-up")
  --connections N       wrk -c (default 50)
  --threads N           wrk -t (default 2)
  --repeat N            measure every variant N times, interleaved; report the median (default 1)
  --quiet-wait S        before each run wait up to S s for other processes to use < 5 % CPU
                        (default 10; 0 = never wait)
  --retries N           measure a run again when other processes used >= 5 % CPU during it,
                        keep the least disturbed (default 1; no retry when the machine
                        stayed busy through the whole wait)
  --only LIST           comma list of: ${SCENARIOS.join(', ')}
  --skip LIST           the same, to leave out
  --nginx-workers W     nginx worker_processes: auto (default) or a number
  --pipeline LIST       m2gw FastCGI pipeline depths to measure (default 1,2,4)
  --fpm-children N      PHP-FPM pm.max_children, pm=static (default 2)
  --workers LIST        m2gw layouts for the workers scenario, besides the default
                        (supervisor + 1 worker): 'single' (m2gw start --single), worker
                        counts and/or 'auto' (default single,2)
  --mem-sizes LIST      body sizes for the memory scenario (default 256MiB,1GiB)
  --cpu-prof            run m2gw under node --cpu-prof; profiles go beside the JSON
  --m2gw-node-args=ARGS extra node flags for m2gw, space-separated; use the = form
                        (--m2gw-node-args="--max-semi-space-size=32"); workers inherit them
  --before-bin PATH     also measure another build (its bin/m2gw, e.g. a worktree of an
                        earlier commit, built) in this run: hello and 1 MiB as m2gw-before,
                        PHP at the default pipeline depth as m2gw-before-pipeline-4, its idle RSS
  --no-json             do not write bench/results/<timestamp>.json
  -h, --help`;

function list(v: string | undefined, fallback: string): string[] {
  return (v ?? fallback)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?$/i.exec(s);
  if (!m) throw new Error(`bad size "${s}" (use e.g. 256MiB, 1GiB)`);
  const unit = (m[2] ?? 'B').toLowerCase();
  const mult = unit === 'gib' ? 2 ** 30 : unit === 'mib' ? 2 ** 20 : unit === 'kib' ? 1024 : 1;
  return Math.round(Number(m[1]) * mult);
}

function positive(v: string | undefined, fallback: number, what: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${what} must be a positive number, got "${v}"`);
  return n;
}

export function parseOptions(argv: readonly string[]): Options | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      'warmup-runs': { type: 'string' },
      connections: { type: 'string' },
      threads: { type: 'string' },
      repeat: { type: 'string' },
      'quiet-wait': { type: 'string' },
      retries: { type: 'string' },
      only: { type: 'string' },
      skip: { type: 'string' },
      'nginx-workers': { type: 'string' },
      pipeline: { type: 'string' },
      'fpm-children': { type: 'string' },
      workers: { type: 'string' },
      'mem-sizes': { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'm2gw-node-args': { type: 'string' },
      'no-json': { type: 'boolean', default: false },
      'before-bin': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const quick = values.quick === true;
  const known = new Set<string>(SCENARIOS);
  const check = (xs: string[]): Scenario[] => {
    for (const x of xs) if (!known.has(x)) throw new Error(`unknown scenario "${x}" (known: ${SCENARIOS.join(', ')})`);
    return xs as Scenario[];
  };
  const workers = list(values.workers, 'single,2').map((w) => (w === 'single' || w === 'auto' ? w : positive(w, 1, '--workers')));
  const only = check(list(values.only, SCENARIOS.join(',')));
  const skip = new Set(check(list(values.skip, '')));
  const scenarios = new Set(only.filter((s) => !skip.has(s)));
  const nginxWorkers = values['nginx-workers'] ?? 'auto';
  if (nginxWorkers !== 'auto') positive(nginxWorkers, 1, '--nginx-workers');
  return {
    quick,
    durationS: positive(values.duration, quick ? 4 : 10, '--duration'),
    warmupS: values.warmup === '0' ? 0 : positive(values.warmup, 1, '--warmup'),
    warmupRuns: values['warmup-runs'] === '0' ? 0 : Math.round(positive(values['warmup-runs'], 2, '--warmup-runs')),
    threads: positive(values.threads, 2, '--threads'),
    repeat: Math.round(positive(values.repeat, 1, '--repeat')),
    quietWaitS: values['quiet-wait'] === '0' ? 0 : positive(values['quiet-wait'], 10, '--quiet-wait'),
    retries: values.retries === '0' ? 0 : Math.round(positive(values.retries, 1, '--retries')),
    connections: positive(values.connections, 50, '--connections'),
    scenarios,
    nginxWorkers,
    pipelines: list(values.pipeline, '1,2,4').map((p) => positive(p, 1, '--pipeline')),
    fpmChildren: positive(values['fpm-children'], 2, '--fpm-children'),
    workers,
    memSizes: list(values['mem-sizes'], quick ? '64MiB,256MiB' : '256MiB,1GiB').map(parseSize),
    cpuProf: values['cpu-prof'] === true,
    m2gwNodeArgs: (values['m2gw-node-args'] ?? '').split(/\s+/).filter((a) => a !== ''),
    json: values['no-json'] !== true,
    beforeBin: values['before-bin'] ?? null,
  };
}
