/** Which ratios each run reports, with the targets set in issues 2 and 3. */
import type { Options } from './options.js';
import type { RatioSpec, Results } from './report.js';

export function layoutVariant(layout: number | 'single' | 'auto'): string {
  return layout === 'single' ? 'm2gw-single' : `m2gw-workers-${layout}`;
}

export function ratioSpecs(opts: Options): RatioSpec[] {
  const specs: RatioSpec[] = [
    { scenario: 'hello', of: 'm2gw', to: 'mongrel2-proxy', target: 0.5, aim: 0.6 },
    { scenario: 'hello', of: 'm2gw', to: 'trivial-handler', target: 0.65 },
    { scenario: 'hello', of: 'm2gw', to: 'nginx-proxy' },
    { scenario: 'hello', of: 'm2gw-no-access-log', to: 'm2gw' },
    { scenario: '1mib', of: 'm2gw', to: 'trivial-handler', target: 0.9 },
    { scenario: '1mib', of: 'm2gw', to: 'mongrel2-proxy' },
    { scenario: '1mib', of: 'm2gw', to: 'nginx-proxy' },
    { scenario: 'hello-noflow', of: 'm2gw', to: 'trivial-handler' },
    { scenario: '1mib-noflow', of: 'm2gw', to: 'trivial-handler', target: 0.6 },
    { scenario: 'php', of: 'nginx-fastcgi-keepconn', to: 'nginx-fastcgi' },
  ];
  for (const p of opts.pipelines) {
    specs.push({ scenario: 'php', of: `m2gw-pipeline-${p}`, to: 'nginx-fastcgi', target: 1.0, aim: 1.25 });
    specs.push({ scenario: 'php', of: `m2gw-pipeline-${p}`, to: 'nginx-fastcgi-keepconn' });
  }
  if (opts.beforeBin !== null) {
    for (const [scenario, to] of [['hello', 'mongrel2-proxy'], ['hello', 'trivial-handler'], ['1mib', 'trivial-handler']] as const) {
      specs.push({ scenario, of: 'm2gw-before', to });
    }
    specs.push({ scenario: 'hello', of: 'm2gw', to: 'm2gw-before' });
    specs.push({ scenario: '1mib', of: 'm2gw', to: 'm2gw-before' });
    specs.push({ scenario: 'php', of: 'm2gw-before-pipeline-4', to: 'nginx-fastcgi' });
    specs.push({ scenario: 'php', of: 'm2gw-pipeline-4', to: 'm2gw-before-pipeline-4' });
  }
  for (const layout of opts.workers) {
    // Issue 7: two workers on two cores must not be slower than one.
    specs.push({ scenario: 'hello', of: layoutVariant(layout), to: 'm2gw', ...(layout === 2 ? { target: 1.0 } : {}) });
    specs.push({ scenario: 'hello', of: layoutVariant(layout), to: 'mongrel2-proxy' });
    specs.push({ scenario: '1mib', of: layoutVariant(layout), to: 'm2gw' });
    specs.push({ scenario: '1mib', of: layoutVariant(layout), to: 'trivial-handler' });
  }
  return specs;
}

/** Issue 7's CPU targets for a hello request, in µs: m2gw summed over its processes, and its supervisor alone. */
export const CPU_TARGETS_US = { m2gw: 35, 'm2gw.sup': 5 } as const;

/** CPU per hello request of the default m2gw against CPU_TARGETS_US, as notes. */
export function cpuNotes(r: Results): void {
  for (const variant of ['m2gw', 'm2gw-before']) {
    const m = r.summary.find((x) => x.scenario === 'hello' && x.variant === variant);
    if (!m) continue;
    for (const [name, target] of Object.entries(CPU_TARGETS_US)) {
      const v = m.cpuUsPerRequest[name];
      if (v !== undefined) r.notes.push(`hello ${variant} CPU per request, ${name === 'm2gw' ? 'all m2gw processes' : 'supervisor alone'}: ${v} µs (target ≤ ${target})${v <= target ? '  ok' : '  ABOVE TARGET'}`);
    }
  }
}

/**
 * Issue 7's latency targets, as notes: PHP p99 no worse than nginx's (without keep_conn, on the
 * same pool), and p50/p99 no worse than the --before-bin build's. Compared by the median of
 * each side's rounds (a run's p99 is one sample of its slowest 1 %; the table's row is the
 * run with the median req/s, whose tail may be the best or the worst of the rounds), and by
 * round: run i of both variants ran in the same round, minutes apart at most.
 */
export function latencyNotes(r: Results): void {
  const pairs: Array<[string, string, string, 'p99' | 'both']> = [
    ['php', 'm2gw-pipeline-4', 'nginx-fastcgi', 'p99'],
    ['hello', 'm2gw', 'm2gw-before', 'both'],
    ['1mib', 'm2gw', 'm2gw-before', 'both'],
    ['php', 'm2gw-pipeline-4', 'm2gw-before-pipeline-4', 'both'],
  ];
  for (const [sc, of, to, which] of pairs) {
    const a = r.summary.find((m) => m.scenario === sc && m.variant === of);
    const b = r.summary.find((m) => m.scenario === sc && m.variant === to);
    if (!a || !b) continue;
    const checks = which === 'p99' ? (['p99'] as const) : (['p50', 'p99'] as const);
    for (const q of checks) {
      const [ra, rb, ma, mb] = q === 'p99' ? [a.p99Runs, b.p99Runs, a.p99MedianMs, b.p99MedianMs] : [a.p50Runs, b.p50Runs, a.p50MedianMs, b.p50MedianMs];
      const n = Math.min(ra.length, rb.length);
      let lower = 0;
      for (let i = 0; i < n; i++) if (ra[i]! <= rb[i]!) lower++;
      const rounds = n > 1 ? `; no higher in ${lower} round${lower === 1 ? '' : 's'} of ${n} (${ra.slice(0, n).map((v, i) => `${v.toFixed(2)}/${rb[i]!.toFixed(2)}`).join(', ')})` : '';
      r.notes.push(`${sc} ${q} ${of} against ${to}, median of rounds: ${ma.toFixed(2)} vs ${mb.toFixed(2)} ms (target: no higher)${ma <= mb ? '  ok' : '  HIGHER'}${rounds}`);
    }
  }
}

/** Flow control on vs off, from the same run: scenario and scenario-noflow. */
export function flowControlNotes(r: Results): void {
  for (const sc of ['hello', '1mib']) {
    for (const v of ['m2gw', 'trivial-handler']) {
      const on = r.summary.find((m) => m.scenario === sc && m.variant === v);
      const off = r.summary.find((m) => m.scenario === `${sc}-noflow` && m.variant === v);
      if (on && off && off.requestsPerSec > 0) {
        r.notes.push(`${sc} ${v}: download.flow_control=1 gives ${(on.requestsPerSec / off.requestsPerSec).toFixed(2)}× the req/s of flow_control=0 (${on.requestsPerSec.toFixed(0)} vs ${off.requestsPerSec.toFixed(0)})`);
      }
    }
  }
}
