/**
 * RSS of m2gw while one large body streams through it at full speed, in each direction:
 * a download (curl -o /dev/null) and an upload (curl -T of a sparse file: Mongrel2
 * spools it to its temp file, m2gw streams that to the app, which counts and discards).
 */
import { execFile } from 'node:child_process';
import { benchAbort } from './abort.js';
import fs from 'node:fs';
import path from 'node:path';
import { round } from './measure.js';
import { RssSampler, treeRssBytes } from './proc-stats.js';
import { sleep } from './procs.js';
import { medianOf } from './report.js';

export interface MemoryRun {
  readonly direction: 'download' | 'upload';
  readonly bytes: number;
  readonly ok: boolean;
  readonly detail: string;
  readonly seconds: number;
  readonly mibPerSec: number;
  readonly baselineRssMiB: number;
  readonly peakRssMiB: number;
  readonly growthMiB: number;
  readonly samples: number;
  /** Mongrel2's peak RSS meanwhile (it buffers nothing either, but it is good to see). */
  readonly mongrel2PeakRssMiB: number;
  /** Upload only: Mongrel2's temp file was deleted after the request. */
  readonly tempFileRemoved?: boolean;
}

export interface MemoryTarget {
  readonly m2gwPid: number;
  readonly mongrel2Pid: number;
  /** Mongrel2's chroot: its upload temp files are in <chroot>/tmp. */
  readonly mongrel2Dir: string;
  /** Base URL of the m2gw route through Mongrel2, e.g. http://127.0.0.1:P/gw */
  readonly base: string;
  readonly tmpDir: string;
}

const MiB = 2 ** 20;

function curl(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '600', ...args], { maxBuffer: 1 << 20, signal: benchAbort.signal }, (err, stdout, stderr) => {
      if (err) reject(new Error(`curl ${args.join(' ')}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

/** RSS before a run: the median of a few samples a moment apart (a GC may be running). */
async function baseline(pid: number): Promise<number> {
  const s: number[] = [];
  for (let i = 0; i < 5; i++) {
    s.push(treeRssBytes(pid));
    await sleep(100);
  }
  return medianOf(s);
}

export async function memoryRun(t: MemoryTarget, direction: 'download' | 'upload', bytes: number): Promise<MemoryRun> {
  const base = await baseline(t.m2gwPid);
  let upload: string | null = null;
  if (direction === 'upload') {
    upload = path.join(t.tmpDir, `upload-${bytes}.bin`);
    // Sparse: created instantly, read back as zeros without touching the disk.
    fs.closeSync(fs.openSync(upload, 'w'));
    fs.truncateSync(upload, bytes);
  }
  const sampler = new RssSampler(t.m2gwPid, 100);
  const m2sampler = new RssSampler(t.mongrel2Pid, 100);
  const started = process.hrtime.bigint();
  let ok = false;
  let detail = '';
  try {
    if (direction === 'download') {
      const out = await curl(['-o', '/dev/null', '-w', '%{http_code} %{size_download}', `${t.base}/stream?bytes=${bytes}`]);
      const [code, size] = out.trim().split(' ');
      ok = code === '200' && Number(size) === bytes;
      detail = `HTTP ${code}, ${size} bytes received`;
    } else {
      // -T streams the file (--data-binary @file would first read all of it into curl's memory).
      const out = await curl(['-X', 'POST', '-T', upload!, '-H', 'Content-Type: application/octet-stream', '-w', '\n%{http_code}', `${t.base}/sink`]);
      const [body = '', code] = out.trim().split('\n');
      let counted = -1;
      try {
        counted = (JSON.parse(body) as { bytes: number }).bytes;
      } catch {
        // not JSON: an error page
      }
      ok = code === '200' && counted === bytes;
      detail = `HTTP ${code}, upstream counted ${counted} bytes`;
    }
  } catch (err) {
    detail = (err as Error).message;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const s = sampler.stop();
  const m2 = m2sampler.stop();
  let tempFileRemoved: boolean | undefined;
  if (upload) {
    fs.rmSync(upload, { force: true });
    // m2gw deletes the temp file once the upstream has the body; give it a moment.
    await sleep(300);
    tempFileRemoved = fs.readdirSync(path.join(t.mongrel2Dir, 'tmp')).filter((f) => f.startsWith('upload.')).length === 0;
  }
  return {
    direction,
    bytes,
    ok,
    detail,
    seconds: round(seconds, 2),
    mibPerSec: round(bytes / MiB / seconds, 1),
    baselineRssMiB: round(base / MiB, 1),
    peakRssMiB: round(s.peak / MiB, 1),
    growthMiB: round((s.peak - base) / MiB, 1),
    samples: s.count,
    mongrel2PeakRssMiB: round(m2.peak / MiB, 1),
    ...(tempFileRemoved !== undefined ? { tempFileRemoved } : {}),
  };
}
