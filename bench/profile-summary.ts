/**
 * Where a .cpuprofile (node --cpu-prof) spent its time: self time by function and by
 * area (m2gw's own modules, undici, zeromq, node internals, GC, idle).
 *
 * Usage: node dist/bench/profile-summary.js <file.cpuprofile | dir> [--top 25]
 */
import fs from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Summary {
  readonly file: string;
  readonly totalMs: number;
  readonly busyMs: number;
  readonly byArea: Array<[string, number]>;
  /** Time charged to the nearest m2gw module or npm package on the stack (what it calls included). */
  readonly byOwner: Array<[string, number]>;
  readonly byFunction: Array<[string, number]>;
}

function area(f: CallFrame): string {
  const u = f.url;
  if (f.functionName === '(idle)') return '(idle)';
  if (f.functionName === '(garbage collector)') return '(gc)';
  if (f.functionName === '(program)') return '(program: native, not attributed)';
  if (u === '') return '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return `npm:${nm[1]}`;
  const src = /\/dist\/src\/(.+?)\.js$/.exec(u);
  if (src) return `m2gw:${src[1]}`;
  if (u.startsWith('node:')) return `node:${u.slice(5).split('/')[0]}`;
  return path.basename(u);
}

export function summarize(file: string, top = 25): Summary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Native and node-internal frames are charged to the code that called them: a socket
  // write made by undici is undici's cost, one made by m2gw's zmq module is that module's.
  const ownerOf = (id: number): string => {
    const leaf = byId.get(id)!.callFrame;
    const a = area(leaf);
    if (a.startsWith('(') && a !== '(native)') return a;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const o = area(byId.get(cur)!.callFrame);
      if (o.startsWith('m2gw:') || o.startsWith('npm:')) return o;
    }
    return 'node (event loop, timers, module loading)';
  };
  const owners = new Map<string, number>();
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const f = byId.get(id)!.callFrame;
    total += us;
    const a = area(f);
    if (a === '(idle)') idle += us;
    areas.set(a, (areas.get(a) ?? 0) + us);
    const o = ownerOf(id);
    owners.set(o, (owners.get(o) ?? 0) + us);
    const name = `${f.functionName || '(anonymous)'} ${f.url ? `${path.basename(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
    fns.set(name, (fns.get(name) ?? 0) + us);
  }
  const sorted = (m: Map<string, number>): Array<[string, number]> =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => [k, Math.round(v / 100) / 10]);
  return { file, totalMs: Math.round(total / 1000), busyMs: Math.round((total - idle) / 1000), byArea: sorted(areas), byOwner: sorted(owners), byFunction: sorted(fns) };
}

export function formatSummary(s: Summary): string {
  const pct = (ms: number): string => `${((ms / Math.max(1, s.busyMs)) * 100).toFixed(1).padStart(5)}%`;
  const lines = [`${s.file}: ${s.totalMs} ms sampled, ${s.busyMs} ms busy (percentages of busy time)`, '  by area:'];
  for (const [k, v] of s.byArea) if (k !== '(idle)') lines.push(`    ${pct(v)} ${String(v).padStart(8)} ms  ${k}`);
  lines.push('  by owner (nearest m2gw module or npm package on the stack, callees included):');
  for (const [k, v] of s.byOwner) if (k !== '(idle)') lines.push(`    ${pct(v)} ${String(v).padStart(8)} ms  ${k}`);
  lines.push('  by function (self time):');
  for (const [k, v] of s.byFunction) if (!k.startsWith('(idle)')) lines.push(`    ${pct(v)} ${String(v).padStart(8)} ms  ${k}`);
  return lines.join('\n');
}

function main(): void {
  const args = process.argv.slice(2);
  const ti = args.indexOf('--top');
  const top = ti >= 0 ? Number(args[ti + 1]) : 25;
  const targets = args.filter((a, i) => a !== '--top' && (ti < 0 || i !== ti + 1));
  if (targets.length === 0) {
    process.stderr.write('usage: node dist/bench/profile-summary.js <file.cpuprofile | dir> [--top N]\n');
    process.exit(2);
  }
  for (const t of targets) {
    const files = fs.statSync(t).isDirectory()
      ? fs.readdirSync(t).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(t, f))
      : [t];
    for (const f of files) process.stdout.write(formatSummary(summarize(f, top)) + '\n\n');
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) main();
