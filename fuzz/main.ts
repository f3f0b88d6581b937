/**
 * `npm run fuzz -- [--seconds N] [--inputs N] [--only name,name] [--seed N] [--no-scaling]`
 * Fuzzes every registered target for N seconds (default 10) or N inputs each, then runs the
 * size-scaling check of every shape. Prints one line per target and per shape; exit status 1
 * when anything failed.
 */
import { runFuzzer, type FuzzStats } from './core.js';
import { targets } from './registry.js';
import { checkScaling, formatScaling } from './scaling.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

function formatStats(s: FuzzStats): string {
  const mib = (s.memoryGrowth / 1048576).toFixed(0);
  return (
    `${s.failures.length === 0 ? 'ok  ' : 'FAIL'} ${s.target.padEnd(26)} ${String(s.inputs).padStart(10)} inputs in ${s.seconds.toFixed(0).padStart(4)} s ` +
    `(${Math.round(s.inputs / Math.max(s.seconds, 1e-9))}/s), ${s.rejected} rejected as documented, slowest ${s.slowestMs.toFixed(2)} ms ` +
    `(${s.slowestBytes} B), memory +${mib} MiB`
  );
}

function main(): number {
  const seconds = arg('seconds') !== undefined ? Number(arg('seconds')) : undefined;
  const inputs = arg('inputs') !== undefined ? Number(arg('inputs')) : undefined;
  const seed = Number(arg('seed') ?? Date.now() % 1_000_000);
  const only = arg('only')?.split(',');
  const chosen = targets.filter((t) => only === undefined || only.includes(t.name));
  if (chosen.length === 0) {
    console.error(`no such target; known: ${targets.map((t) => t.name).join(', ')}`);
    return 2;
  }
  console.log(`fuzz: ${chosen.length} target(s), seed ${seed}, ${inputs !== undefined ? `${inputs} inputs` : `${seconds ?? 10} s`} each`);
  let failed = false;
  for (const t of chosen) {
    const s = runFuzzer(t, { seed, ...(inputs !== undefined ? { inputs } : { seconds: seconds ?? 10 }), stopOnFailure: false });
    console.log(formatStats(s));
    for (const f of s.failures.slice(0, 5)) console.log(`     ${f}`);
    failed ||= s.failures.length > 0;
  }
  if (!process.argv.includes('--no-scaling')) {
    console.log('scaling (median ms per call at each size):');
    for (const t of chosen) {
      for (const shape of t.shapes ?? []) {
        const r = checkScaling(t, shape);
        console.log(formatScaling(r));
        failed ||= !r.ok;
      }
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = main();
