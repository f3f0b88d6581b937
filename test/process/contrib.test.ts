/**
 * contrib/: the Grafana dashboard and the Prometheus alert rules may only name metrics
 * (and labels) that a real m2gw exports, checked against a live /metrics scrape of
 * `m2gw start` behind a real Mongrel2. A renamed metric breaks this test instead of
 * silently blanking a panel or disarming an alert.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { request } from '../harness/http-client.js';
import { freePort } from '../harness/ports.js';
import { Daemon, gwToml, parsePrometheus, repoRoot, startWorld, type World } from './support.js';

interface Dashboard {
  panels: { title: string; targets?: { expr: string }[] }[];
  templating?: { list: { query?: unknown }[] };
}
interface RuleFile {
  groups: { name: string; rules: { alert?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[];
}

/** Labels Prometheus adds to every series, or PromQL uses for histograms. */
const TARGET_LABELS = new Set(['instance', 'job', 'le']);

interface Exported {
  /** Series names as a query names them (histograms: _bucket, _sum, _count). */
  names: Set<string>;
  labels: Map<string, Set<string>>;
}

function exported(metricsText: string): Exported {
  const { samples, types } = parsePrometheus(metricsText);
  const names = new Set<string>();
  for (const [name, type] of types) {
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    else names.add(name);
  }
  const labels = new Map<string, Set<string>>();
  for (const s of samples) {
    const set = labels.get(s.name) ?? new Set<string>();
    for (const k of Object.keys(s.labels)) set.add(k);
    labels.set(s.name, set);
  }
  return { names, labels };
}

/** Every m2gw metric an expression names, with the label keys of its {selectors}. */
function metricsIn(expr: string): { name: string; selectorLabels: string[] }[] {
  const out: { name: string; selectorLabels: string[] }[] = [];
  for (const m of expr.matchAll(/\b(m2gw_[a-z0-9_]+)(\{([^}]*)\})?/g)) {
    const selectorLabels = [...(m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)].map((l) => l[1]!);
    out.push({ name: m[1]!, selectorLabels });
  }
  return out;
}

/** Label keys of `by (...)` / `on (...)` / `ignoring (...)` clauses. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|on|ignoring|without)\s*\(([^)]*)\)/g)].flatMap((m) => (m[1] ?? '').split(',').map((l) => l.trim()).filter((l) => l !== ''));
}

describe('contrib dashboards and alert rules against a live /metrics', () => {
  let world: World;
  let daemon: Daemon;
  let live: Exported;
  let dashboard: Dashboard;
  let rules: RuleFile;

  before(async () => {
    dashboard = JSON.parse(await readFile(path.join(repoRoot, 'contrib/grafana/m2gw.json'), 'utf8')) as Dashboard;
    rules = parseYaml(await readFile(path.join(repoRoot, 'contrib/prometheus/m2gw-rules.yml'), 'utf8')) as RuleFile;
    world = await startWorld();
    const deadPort = await freePort();
    const extra = `\n[upstream.dead]\ntype = "http"\nurl = "http://127.0.0.1:${deadPort}"\n\n[[route]]\nprefix = "/dead/"\nupstream = "dead"\n`;
    daemon = await Daemon.start(world, gwToml(world, { workers: 1, extra }));
    // Traffic, an upstream error and a reload, so labelled series have samples whose labels can be checked.
    for (const p of ['/echo/a', '/status/404', '/status/503', '/dead/x']) await request(`${world.m2.url}${p}`);
    const mark = daemon.logs.length;
    daemon.signal('SIGHUP');
    await daemon.waitForLog((l) => daemon.logs.indexOf(l) >= mark && l.message.startsWith('reloaded:'), 20_000, 'reload');
    const res = await daemon.admin('/metrics');
    assert.equal(res.status, 200);
    live = exported(res.body);
  });

  after(async () => {
    await daemon?.kill();
    await world?.stop();
  });

  function checkExpr(where: string, expr: string): void {
    const used = metricsIn(expr);
    assert.ok(used.length > 0, `${where}: names no m2gw metric: ${expr}`);
    for (const { name, selectorLabels } of used) {
      assert.ok(live.names.has(name), `${where}: ${name} is not in /metrics (exported: ${[...live.names].sort().join(', ')})`);
      const known = live.labels.get(name);
      for (const l of selectorLabels) {
        if (TARGET_LABELS.has(l) || known === undefined) continue;
        assert.ok(known.has(l), `${where}: ${name} has no label "${l}" (it has ${[...known].join(', ') || 'none'})`);
      }
    }
    for (const l of groupingLabels(expr)) {
      if (TARGET_LABELS.has(l)) continue;
      const somewhere = used.some(({ name }) => live.labels.get(name)?.has(l));
      assert.ok(somewhere, `${where}: grouping by "${l}", a label none of ${used.map((u) => u.name).join(', ')} has`);
    }
  }

  test('every Grafana panel query names exported metrics and labels', () => {
    const titles = dashboard.panels.map((p) => p.title);
    for (const wanted of [/requests\/s by route and status/i, /latency percentiles/i, /upstream errors/i, /queue depth/i, /pool connections/i, /workers/i, /reloads/i]) {
      assert.ok(titles.some((t) => wanted.test(t)), `a panel for ${wanted} (panels: ${titles.join('; ')})`);
    }
    let exprs = 0;
    for (const p of dashboard.panels) {
      assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has a query`);
      for (const t of p.targets ?? []) {
        checkExpr(`panel "${p.title}"`, t.expr);
        exprs++;
      }
    }
    for (const v of dashboard.templating?.list ?? []) {
      const q = v.query;
      const text = typeof q === 'string' ? q : typeof q === 'object' && q !== null && 'query' in q ? String((q as { query: unknown }).query) : '';
      if (text.includes('m2gw_')) checkExpr('templating', text);
    }
    assert.ok(exprs >= 7);
  });

  test('every alert rule names exported metrics and labels, and the required alerts exist', () => {
    const all = rules.groups.flatMap((g) => g.rules);
    const names = all.map((r) => r.alert ?? '');
    for (const wanted of [/upstream.*down/i, /5xx/i, /queue.*saturated/i, /crash/i, /reload.*failed/i]) {
      assert.ok(names.some((n) => wanted.test(n)), `an alert for ${wanted} (alerts: ${names.join(', ')})`);
    }
    for (const r of all) {
      assert.equal(typeof r.expr, 'string', `${r.alert}: expr`);
      assert.ok(r.labels?.['severity'], `${r.alert}: a severity label`);
      assert.ok(r.annotations?.['summary'], `${r.alert}: a summary`);
      if (r.for !== undefined) assert.match(r.for, /^\d+[smh]$/, `${r.alert}: for`);
      checkExpr(`alert ${r.alert}`, r.expr);
    }
  });

  test('the check can fail: a misspelt metric is caught', () => {
    assert.throws(() => checkExpr('probe', 'sum(rate(m2gw_request_total[5m]))'), /m2gw_request_total is not in \/metrics/);
    assert.throws(() => checkExpr('probe', 'm2gw_workers{status="active"}'), /has no label "status"/);
  });

  test('logrotate snippet: the log directory, and SIGUSR1 to reopen', async () => {
    const text = await readFile(path.join(repoRoot, 'contrib/logrotate/m2gw'), 'utf8');
    assert.match(text, /^\/var\/log\/m2gw\/\*\.log \{$/m);
    assert.match(text, /systemctl kill --kill-who=main --signal=USR1 m2gw\.service/);
  });
});
