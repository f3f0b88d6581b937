/**
 * m2gw benchmark: m2gw against its anchors, measured in the same run on the same machine.
 * See bench/README.md. Entry point: bench/run.sh (builds, then runs dist/bench/run.js).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPhpFpm, type PhpFpm } from '../test/harness/php-fpm.js';
import { benchAbort } from './lib/abort.js';
import type { M2gwInstance } from './lib/m2gw.js';
import { pkgVersion, tool } from './lib/machine.js';
import { measure, type LoadSettings, type Measurement, type Target } from './lib/measure.js';
import { memoryRun } from './lib/memory.js';
import { startNginx } from './lib/nginx.js';
import { parseOptions, USAGE, type Options, type Scenario } from './lib/options.js';
import { PHP_ROOT, RESULTS_DIR } from './lib/paths.js';
import { formatSummary, summarize } from './profile-summary.js';
import { idleRss, idleRssNote, processTree } from './lib/proc-stats.js';
import { ProcessGroup } from './lib/procs.js';
import { aggregate, computeRatios, formatTable, memoryVerdicts, newResults, writeJson, type Results } from './lib/report.js';
import { cpuNotes, flowControlNotes, latencyNotes, layoutVariant, ratioSpecs } from './lib/ratios.js';
import { startApp, startWorld, startWorldM2gw, type App, type World } from './lib/world.js';

const HELLO_BYTES = 14;
const MIB = 1 << 20;
/** Message size the trivial handler streams in without flow control: what m2gw coalesces to. */
const TRIVIAL_CHUNK = 128 * 1024;

interface Ctx {
  readonly opts: Options;
  readonly group: ProcessGroup;
  readonly results: Results;
  readonly load: LoadSettings;
  readonly tmp: string;
  readonly app: App;
  readonly profDir: string;
  readonly has: Record<'nginx' | 'phpFpm' | 'curl', boolean>;
}

function log(line: string): void {
  process.stdout.write(line + '\n');
}

async function run(ctx: Ctx, t: Target): Promise<Measurement | null> {
  try {
    const m = await measure(t, ctx.load, { maxWaitS: ctx.opts.quietWaitS, retries: ctx.opts.retries }, log);
    ctx.results.measurements.push(m);
    if (m.errors > 0) ctx.results.failures.push(`${t.scenario}/${t.variant}: ${m.errorDetail}`);
    return m;
  } catch (err) {
    const msg = `${t.scenario}/${t.variant}: ${(err as Error).message}`;
    log(`  FAILED ${msg}`);
    ctx.results.failures.push(msg);
    return null;
  }
}

/**
 * A fresh Mongrel2 (with the trivial handler) and m2gw for one phase, both stopped after.
 * Fresh, not a restarted m2gw on a running Mongrel2: Mongrel2 1.12 sometimes stops
 * subscribing new handler PUB sockets after a handler left while requests kept arriving
 * (see README), and m2gw then waits for the subscription for ever.
 */
async function withM2gw<T>(
  ctx: Ctx,
  flowControl: boolean,
  phase: string,
  extra: { accessLog?: false; workers?: number | 'auto'; spareWorker?: false; single?: boolean; fastcgi?: { address: string; pipeline: number }; bin?: string },
  fn: (world: World, gw: M2gwInstance) => Promise<T>,
): Promise<T> {
  const dir = path.join(ctx.tmp, `m2gw-${phase}`);
  const profDir = ctx.opts.cpuProf ? path.join(ctx.profDir, phase) : undefined;
  const world = await startWorld(ctx.group, ctx.app, flowControl, TRIVIAL_CHUNK);
  try {
    const gw = await startWorldM2gw(ctx.group, world, {
      dir,
      appUrl: ctx.app.url,
      probePath: extra.fastcgi ? '/gw/php/hello.php' : '/gw/hello',
      ...(extra.accessLog !== undefined ? { accessLog: extra.accessLog } : {}),
      ...(extra.workers !== undefined ? { workers: extra.workers } : {}),
      ...(extra.spareWorker === false ? { spareWorker: false as const } : {}),
      ...(extra.single ? { single: true } : {}),
      ...(extra.bin !== undefined ? { bin: extra.bin } : {}),
      ...(extra.fastcgi
        ? { fastcgi: { address: extra.fastcgi.address, documentRoot: PHP_ROOT, maxConnections: ctx.opts.fpmChildren, pipeline: extra.fastcgi.pipeline } }
        : {}),
      ...(profDir ? { cpuProfDir: profDir } : {}),
      ...(ctx.opts.m2gwNodeArgs.length > 0 ? { nodeArgs: ctx.opts.m2gwNodeArgs } : {}),
    });
    if (phase === 'http' || phase === 'before' || phase === 'no-spare') {
      // The idle daemon, before any load: supervisor, worker, pre-forked spare (unless turned off).
      await new Promise((r) => setTimeout(r, 2_000));
      const procs = idleRss(gw.pid, 1);
      if (phase === 'http') ctx.results.idleRss.push(...procs);
      if (phase === 'no-spare') ctx.results.idleRssNoSpare.push(...procs);
      ctx.results.notes.push(idleRssNote(phase === 'before' ? 'the default m2gw (--before-bin build)' : phase === 'no-spare' ? 'm2gw with spare_worker = false' : 'the default m2gw', procs));
    }
    try {
      return await fn(world, gw);
    } finally {
      await gw.stop();
      if (profDir && fs.existsSync(profDir)) {
        for (const f of fs.readdirSync(profDir)) ctx.results.profiles.push({ phase, file: path.join(profDir, f) });
      }
    }
  } finally {
    await world.stop();
  }
}

/** hello and 1 MiB through every front end of one world (plus nginx when given). */
async function httpScenarios(ctx: Ctx, world: World, gw: M2gwInstance, nginxPort: number | null, nginxPid: number | null, suffix: string, variants: 'all' | 'handlers'): Promise<void> {
  const want = (s: Scenario): boolean => ctx.opts.scenarios.has(s);
  const cases = [
    { scenario: 'hello', leaf: 'hello', bytes: HELLO_BYTES, contains: 'Hello' },
    { scenario: '1mib', leaf: '1m', bytes: MIB, contains: undefined },
  ] as const;
  for (const c of cases) {
    if (suffix === '' && !want(c.scenario)) continue;
    const scenario = c.scenario + suffix;
    const m2 = world.m2.pid;
    const common = { scenario, bytes: c.bytes, ...(c.contains ? { contains: c.contains } : {}) };
    log(`${scenario}:`);
    // Rounds interleave the variants, so a slow drift of the machine hits them alike.
    for (let round = 0; round < ctx.opts.repeat; round++) {
      await run(ctx, { ...common, variant: 'm2gw', url: `${world.base}/gw/${c.leaf}`, processes: { mongrel2: m2, m2gw: gw.pid, app: ctx.app.pid }, rootOnly: { 'm2gw.sup': gw.pid }, diagnose: gw.diagnose });
      if (variants === 'all') await run(ctx, { ...common, variant: 'mongrel2-proxy', url: `${world.base}/proxy/${c.leaf}`, processes: { mongrel2: m2, app: ctx.app.pid } });
      await run(ctx, { ...common, variant: 'trivial-handler', url: `${world.base}/trivial/${c.leaf}`, processes: { mongrel2: m2, trivial: world.trivialPid }, diagnose: world.diagnose });
      if (variants === 'all' && nginxPort !== null && nginxPid !== null) {
        await run(ctx, { ...common, variant: 'nginx-proxy', url: `http://127.0.0.1:${nginxPort}/${c.leaf}`, processes: { nginx: nginxPid, app: ctx.app.pid } });
      }
    }
  }
}

async function flowControlOnPhases(ctx: Ctx): Promise<void> {
  const s = ctx.opts.scenarios;
  if (s.has('hello') || s.has('1mib')) {
    const nginx = ctx.has.nginx ? await startNginx(ctx.group, { kind: 'proxy', appPort: ctx.app.port }, ctx.opts.nginxWorkers) : null;
    try {
      await withM2gw(ctx, true, 'http', {}, (world, gw) => httpScenarios(ctx, world, gw, nginx?.port ?? null, nginx?.pid ?? null, '', 'all'));
    } finally {
      await nginx?.stop();
    }
  }
  const beforeBin = ctx.opts.beforeBin;
  if (beforeBin !== null && (s.has('hello') || s.has('1mib'))) {
    log(`m2gw-before (${beforeBin}):`);
    await withM2gw(ctx, true, 'before', { bin: beforeBin }, async (world, gw) => {
      for (const [scenario, leaf, bytes] of [['hello', 'hello', HELLO_BYTES], ['1mib', '1m', MIB]] as const) {
        if (!s.has(scenario)) continue;
        for (let round = 0; round < ctx.opts.repeat; round++) {
          await run(ctx, { scenario, variant: 'm2gw-before', url: `${world.base}/gw/${leaf}`, bytes, processes: { mongrel2: world.m2.pid, m2gw: gw.pid, app: ctx.app.pid }, rootOnly: { 'm2gw.sup': gw.pid }, note: beforeBin, diagnose: gw.diagnose });
        }
      }
    });
  }
  if (s.has('accesslog')) {
    // The headline m2gw rows run the default configuration (access log on, level info, to a
    // file); this variant shows what the access log costs.
    log('hello without the access log:');
    await withM2gw(ctx, true, 'no-access-log', { accessLog: false }, async (world, gw) => {
      for (let round = 0; round < ctx.opts.repeat; round++) {
        await run(ctx, {
          scenario: 'hello',
          variant: 'm2gw-no-access-log',
          url: `${world.base}/gw/hello`,
          bytes: HELLO_BYTES,
          contains: 'Hello',
          processes: { mongrel2: world.m2.pid, m2gw: gw.pid, app: ctx.app.pid },
          rootOnly: { 'm2gw.sup': gw.pid },
          note: 'log level warn, access_log = false',
          diagnose: gw.diagnose,
        });
      }
    });
  }
  if (s.has('workers')) {
    for (const layout of ctx.opts.workers) {
      const variant = layoutVariant(layout);
      log(`${variant} (${layout === 'single' ? 'm2gw start --single' : `[gateway] workers = ${layout}`}):`);
      const extra = layout === 'single' ? { single: true } : { workers: layout };
      await withM2gw(ctx, true, variant, extra, async (world, gw) => {
        const note = `${processTree(gw.pid).length} m2gw process(es)`;
        // The workloads selected with --only, or both when it named neither.
        const both = !s.has('hello') && !s.has('1mib');
        for (const [scenario, leaf, bytes] of [['hello', 'hello', HELLO_BYTES], ['1mib', '1m', MIB]] as const) {
          if (!both && !s.has(scenario)) continue;
          for (let round = 0; round < ctx.opts.repeat; round++) {
            const rootOnly = layout === 'single' ? {} : { rootOnly: { 'm2gw.sup': gw.pid } };
            await run(ctx, { scenario, variant, url: `${world.base}/gw/${leaf}`, bytes, processes: { mongrel2: world.m2.pid, m2gw: gw.pid, app: ctx.app.pid }, ...rootOnly, note, diagnose: gw.diagnose });
          }
        }
      });
    }
  }
  if (s.has('memory')) {
    if (!ctx.has.curl) ctx.results.notes.push('memory: skipped, curl not installed');
    else await memoryPhase(ctx);
  }
}

async function memoryPhase(ctx: Ctx): Promise<void> {
  log('memory: the idle daemon without its spare worker');
  await withM2gw(ctx, true, 'no-spare', { spareWorker: false }, async () => undefined);
  log('memory (m2gw RSS, sampled every 100 ms):');
  await withM2gw(ctx, true, 'memory', {}, async (world, gw) => {
    const target = { m2gwPid: gw.pid, mongrel2Pid: world.m2.pid, mongrel2Dir: world.m2.dir, base: `${world.base}/gw`, tmpDir: ctx.tmp };
    // Untimed first: the baseline should be a gateway that has already streamed both ways.
    for (const direction of ['download', 'upload'] as const) await memoryRun(target, direction, 32 * MIB);
    for (const direction of ['download', 'upload'] as const) {
      for (const size of [...ctx.opts.memSizes].sort((a, b) => a - b)) {
        const r = await memoryRun(target, direction, size);
        ctx.results.memory.push(r);
        log(`  ${direction.padEnd(8)} ${(size / MIB).toFixed(0).padStart(5)} MiB  ${r.mibPerSec} MiB/s  RSS base ${r.baselineRssMiB} peak ${r.peakRssMiB} (+${r.growthMiB}) MiB  ${r.ok ? 'ok' : 'FAILED'} ${r.detail}`);
        if (!r.ok) ctx.results.failures.push(`memory ${direction} ${size}: ${r.detail}`);
        if (r.tempFileRemoved === false) ctx.results.failures.push(`memory upload ${size}: Mongrel2 temp file left behind`);
      }
    }
  });
}

async function phpPhase(ctx: Ctx): Promise<void> {
  if (!ctx.opts.scenarios.has('php')) return;
  if (!ctx.has.phpFpm) {
    ctx.results.notes.push('php: skipped, php-fpm not installed');
    return;
  }
  const fpm = await startPhpFpm({ maxChildren: ctx.opts.fpmChildren, pm: 'static', listen: 'tcp' });
  ctx.group.defer('php-fpm', () => fpm.stop());
  try {
    log('php (hello.php, PHP-FPM pm=static):');
    for (let round = 0; round < ctx.opts.repeat; round++) await phpRound(ctx, fpm);
  } finally {
    await ctx.group.release('php-fpm');
  }
}

async function phpRound(ctx: Ctx, fpm: PhpFpm): Promise<void> {
  const common = { scenario: 'php', bytes: HELLO_BYTES, contains: 'Hello' };
  if (ctx.has.nginx) {
    for (const keepConn of [false, true]) {
      // One nginx per variant: kept connections of one must not pin children during the other.
      const nginx = await startNginx(ctx.group, { kind: 'fastcgi', fpmAddress: fpm.address, documentRoot: PHP_ROOT, keepConn, fpmChildren: ctx.opts.fpmChildren }, ctx.opts.nginxWorkers);
      try {
        await run(ctx, {
          ...common,
          variant: keepConn ? 'nginx-fastcgi-keepconn' : 'nginx-fastcgi',
          url: `http://127.0.0.1:${nginx.port}/hello.php`,
          processes: { nginx: nginx.pid, 'php-fpm': fpm.pid },
        });
      } finally {
        await nginx.stop();
      }
    }
  }
  const builds: Array<[number, string | undefined]> = ctx.opts.pipelines.map((p) => [p, undefined]);
  if (ctx.opts.beforeBin !== null) builds.push([4, ctx.opts.beforeBin]);
  for (const [pipeline, bin] of builds) {
    // A fresh m2gw per depth: its kept connections pin PHP-FPM children until it exits.
    const phase = `php${bin !== undefined ? '-before' : ''}-pipeline-${pipeline}`;
    await withM2gw(ctx, true, phase, { fastcgi: { address: fpm.address, pipeline }, ...(bin !== undefined ? { bin } : {}) }, async (world, gw) => {
      await run(ctx, {
        ...common,
        variant: `m2gw${bin !== undefined ? '-before' : ''}-pipeline-${pipeline}`,
        url: `${world.base}/gw/php/hello.php`,
        processes: { mongrel2: world.m2.pid, m2gw: gw.pid, 'php-fpm': fpm.pid },
        rootOnly: { 'm2gw.sup': gw.pid },
        diagnose: gw.diagnose,
        note: `max_connections = ${ctx.opts.fpmChildren}, pipeline = ${pipeline}`,
      });
    });
  }
}

async function noFlowPhase(ctx: Ctx): Promise<void> {
  if (!ctx.opts.scenarios.has('noflow')) return;
  await withM2gw(ctx, false, 'noflow', {}, (world, gw) => httpScenarios(ctx, world, gw, null, null, '-noflow', 'handlers'));
}

async function main(): Promise<number> {
  let opts: Options | 'help';
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (opts === 'help') {
    log(USAGE);
    return 0;
  }
  for (const t of ['wrk', 'mongrel2', 'm2sh']) {
    if (!tool(t)) {
      process.stderr.write(`bench: ${t} is not installed (apt-get install wrk mongrel2-core nginx-light php-fpm curl)\n`);
      return 2;
    }
  }
  const group = new ProcessGroup();
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\n${sig}: stopping every process the bench started...\n`);
    benchAbort.abort();
    void group.stopAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const startedAt = new Date().toISOString();
  const stamp = startedAt.replace(/[:.]/g, '-');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-bench-'));
  // BENCH_KEEP_TMP=1 keeps the run's configs and logs (the access logs, for latency studies).
  if (process.env.BENCH_KEEP_TMP === '1') group.defer('tmp', () => log(`kept: ${tmp}`));
  else group.defer('tmp', () => fs.rmSync(tmp, { recursive: true, force: true }));
  const results: Results = newResults(
    startedAt,
    {
      cpus: os.availableParallelism(),
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      memoryMiB: Math.round(os.totalmem() / MIB),
      kernel: os.release(),
      node: process.version,
      mongrel2: pkgVersion('mongrel2-core'),
      nginx: pkgVersion('nginx-light') !== 'unknown' ? pkgVersion('nginx-light') : pkgVersion('nginx'),
      phpFpm: pkgVersion('php8.2-fpm'),
      wrk: pkgVersion('wrk'),
    },
    { ...opts, scenarios: [...opts.scenarios] },
  );
  log(`m2gw bench: wrk -t${opts.threads} -c${opts.connections} -d${opts.durationS}s (+${opts.warmupRuns}×${opts.warmupS}s warm-up); nginx workers ${opts.nginxWorkers}; ${os.availableParallelism()} CPUs`);
  try {
    const app = await startApp(group);
    const ctx: Ctx = {
      opts,
      group,
      results,
      tmp,
      app,
      load: { threads: opts.threads, connections: opts.connections, durationS: opts.durationS, warmupS: opts.warmupS, warmupRuns: opts.warmupRuns },
      profDir: path.join(RESULTS_DIR, `prof-${stamp}`),
      has: { nginx: tool('nginx'), phpFpm: tool('php-fpm8.2') || tool('php-fpm'), curl: tool('curl') },
    };
    if (!ctx.has.nginx) results.notes.push('nginx not installed: nginx variants skipped');
    await flowControlOnPhases(ctx);
    await phpPhase(ctx);
    await noFlowPhase(ctx);
  } catch (err) {
    results.failures.push(`aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await group.stopAll();
  }
  results.finishedAt = new Date().toISOString();
  results.summary = aggregate(results.measurements);
  results.ratios = computeRatios(results.summary, ratioSpecs(opts));
  results.memoryVerdicts = memoryVerdicts(results.memory);
  flowControlNotes(results);
  cpuNotes(results);
  latencyNotes(results);
  log(formatTable(results));
  for (const p of results.profiles) {
    try {
      log('\n' + formatSummary(summarize(p.file, 15)));
    } catch (err) {
      log(`cannot read profile ${p.file}: ${(err as Error).message}`);
    }
  }
  if (opts.json) log(`\nresults: ${writeJson(RESULTS_DIR, results)}`);
  return results.failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
