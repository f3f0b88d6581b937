/**
 * CPU time and RSS from /proc, for a process and its descendants (nginx and PHP-FPM
 * do their work in children; a supervised m2gw will too).
 */
import fs from 'node:fs';

/** Linux USER_HZ: /proc/<pid>/stat times are in these ticks (100 on every mainstream arch). */
const CLOCK_TICKS = 100;

interface StatFields {
  ppid: number;
  cpuTicks: number;
}

function readStat(pid: number): StatFields | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return { ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/** `pid` and every descendant alive right now. */
export function processTree(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const s = readStat(Number(e));
    if (s) parentOf.set(Number(e), s.ppid);
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    for (const [child, parent] of parentOf) if (parent === out[i]) out.push(child);
  }
  return out.filter((p) => parentOf.has(p));
}

/** CPU seconds (user+system) used so far by the tree. Children that already exited are not counted. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const p of pids) ticks += readStat(p)?.cpuTicks ?? 0;
  return ticks / CLOCK_TICKS;
}

/** VmRSS in bytes, 0 when the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Proportional set size in bytes (0 when unknown): RSS with each shared page divided among
 * the processes sharing it. RSS counts the node binary's pages (~30 MiB) in full in every
 * process; PSS says what one more process really costs.
 */
export function pssBytes(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export function treeRssBytes(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + rssBytes(p), 0);
}

/** Samples the tree's RSS every `intervalMs` until stop(). */
export class RssSampler {
  private readonly samples: number[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number, intervalMs = 100) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    const v = treeRssBytes(this.pid);
    if (v > 0) this.samples.push(v);
  }

  stop(): { peak: number; last: number; count: number } {
    clearInterval(this.timer);
    this.sample();
    return { peak: Math.max(0, ...this.samples), last: this.samples.at(-1) ?? 0, count: this.samples.length };
  }
}

/**
 * CPU used by several named process trees between start() and the returned stop(), and by
 * single processes (`roots`, their children not included) reported under their own names.
 */
export function cpuMeter(trees: Readonly<Record<string, number>>, roots: Readonly<Record<string, number>> = {}): () => Record<string, number> {
  const pidsOf = (root: number): number[] => processTree(root);
  const before: Record<string, number> = {};
  const members: Record<string, number[]> = {};
  for (const [name, pid] of Object.entries(trees)) {
    members[name] = pidsOf(pid);
    before[name] = cpuSeconds(members[name]!);
  }
  const rootsBefore: Record<string, number> = {};
  for (const [name, pid] of Object.entries(roots)) rootsBefore[name] = cpuSeconds([pid]);
  return () => {
    const used: Record<string, number> = {};
    for (const [name, pid] of Object.entries(trees)) {
      // Re-list: workers may have been forked since (php-fpm, nginx, a supervisor).
      const now = pidsOf(pid);
      const old = new Set(members[name]);
      const fresh = now.filter((p) => !old.has(p));
      used[name] = Math.max(0, cpuSeconds(now.filter((p) => old.has(p))) - before[name]! + cpuSeconds(fresh));
    }
    for (const [name, pid] of Object.entries(roots)) used[name] = Math.max(0, cpuSeconds([pid]) - rootsBefore[name]!);
    return used;
  };
}

/** Busy CPU ticks of the whole machine (all CPUs), from /proc/stat. */
function machineBusyTicks(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
}

/** This process's CPU plus that of its children it has reaped (wrk, curl). */
function selfAndReapedTicks(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime 14, stime 15, cutime 16, cstime 17 (f[0] is field 3)
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

/**
 * CPU seconds the machine spent on anything but the measured trees, this process and
 * its reaped children (wrk): other people's work that makes a measurement noisy.
 */
export function foreignCpuMeter(): (measuredTreesSeconds: number) => number {
  const busy0 = machineBusyTicks();
  const self0 = selfAndReapedTicks();
  return (measured) => {
    const busy = (machineBusyTicks() - busy0) / CLOCK_TICKS;
    const self = (selfAndReapedTicks() - self0) / CLOCK_TICKS;
    return Math.max(0, busy - self - measured);
  };
}

/**
 * RSS of each process of an m2gw started with a supervisor: the root, then its children
 * in fork order (pid order): the first `workers` are the workers, the next the pre-forked
 * spare (the supervisor forks the generation's workers before the spare).
 */
export function idleRss(rootPid: number, workers: number): Array<{ role: string; pid: number; rssMiB: number; pssMiB: number }> {
  const children = processTree(rootPid)
    .slice(1)
    .filter((p) => readStat(p)?.ppid === rootPid)
    .sort((a, b) => a - b);
  const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;
  const one = (role: string, pid: number): { role: string; pid: number; rssMiB: number; pssMiB: number } => ({ role, pid, rssMiB: mib(rssBytes(pid)), pssMiB: mib(pssBytes(pid)) });
  return [one('supervisor', rootPid), ...children.map((pid, i) => one(i < workers ? 'worker' : 'spare', pid))];
}

/** The bench's note line for one idle daemon (`which`: what was measured). */
export function idleRssNote(which: string, procs: ReadonlyArray<{ role: string; rssMiB: number; pssMiB: number }>): string {
  const total = procs.reduce((a, p) => a + p.rssMiB, 0);
  const pss = procs.reduce((a, p) => a + p.pssMiB, 0);
  return `idle RSS of ${which}: ${procs.map((p) => `${p.role} ${p.rssMiB} MiB (PSS ${p.pssMiB})`).join(', ')}; total ${total.toFixed(1)} MiB (target ≤ 150), PSS ${pss.toFixed(1)} MiB`;
}
