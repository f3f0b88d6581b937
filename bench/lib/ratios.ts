/** Which ratios each run reports, with the targets set in issues 2 and 3. */
import type { Options } from './options.js';
import type { RatioSpec, Results } from './report.js';

export function layoutVariant(layout: number | 'single' | 'auto'): string {
  return layout === 'single' ? 'm2gw-single' : `m2gw-workers-${layout}`;
}

export function ratioSpecs(opts: Options): RatioSpec[] {
  const specs: RatioSpec[] = [
    { scenario: 'hello', of: 'm2gw', to: 'mongrel2-proxy', target: 0.4, aim: 0.55 },
    { scenario: 'hello', of: 'm2gw', to: 'trivial-handler' },
    { scenario: 'hello', of: 'm2gw', to: 'nginx-proxy' },
    { scenario: 'hello', of: 'm2gw+access-log', to: 'm2gw' },
    { scenario: '1mib', of: 'm2gw', to: 'trivial-handler', target: 0.6 },
    { scenario: '1mib', of: 'm2gw', to: 'mongrel2-proxy' },
    { scenario: '1mib', of: 'm2gw', to: 'nginx-proxy' },
    { scenario: 'hello-noflow', of: 'm2gw', to: 'trivial-handler' },
    { scenario: '1mib-noflow', of: 'm2gw', to: 'trivial-handler', target: 0.6 },
    { scenario: 'php', of: 'nginx-fastcgi-keepconn', to: 'nginx-fastcgi' },
  ];
  for (const p of opts.pipelines) {
    specs.push({ scenario: 'php', of: `m2gw-pipeline-${p}`, to: 'nginx-fastcgi', target: 0.9 });
    specs.push({ scenario: 'php', of: `m2gw-pipeline-${p}`, to: 'nginx-fastcgi-keepconn' });
  }
  for (const layout of opts.workers) {
    specs.push({ scenario: 'hello', of: layoutVariant(layout), to: 'm2gw' });
    specs.push({ scenario: 'hello', of: layoutVariant(layout), to: 'mongrel2-proxy' });
    specs.push({ scenario: '1mib', of: layoutVariant(layout), to: 'm2gw' });
    specs.push({ scenario: '1mib', of: layoutVariant(layout), to: 'trivial-handler' });
  }
  return specs;
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
