/**
 * The supervisor's pid file ([gateway] pid_file): written at start, removed at exit
 * (only if it still names this process), read by `m2gw stop|reload`.
 */
import fs from 'node:fs';
import path from 'node:path';

export function writePidFile(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${process.pid}\n`, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

export function removePidFile(file: string): void {
  try {
    if (readPidFile(file) === process.pid) fs.unlinkSync(file);
  } catch {
    // already gone
  }
}

/** The pid in the file; throws with a readable message when there is none. */
export function readPidFile(file: string): number {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `no pid file at ${file}: is m2gw running?` : `cannot read pid file ${file}: ${String(err)}`);
  }
  const pid = Number(text.trim());
  if (!Number.isSafeInteger(pid) || pid <= 1) throw new Error(`pid file ${file} does not hold a pid: ${JSON.stringify(text.trim())}`);
  return pid;
}

/** Whether a process with this pid exists (and we may signal it). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
