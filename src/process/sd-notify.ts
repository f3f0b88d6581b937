/**
 * systemd readiness notification (Type=notify). Node cannot send on the AF_UNIX
 * datagram NOTIFY_SOCKET itself, so this runs `systemd-notify --pid=<supervisor>`;
 * the unit needs NotifyAccess=all because the sender is a child process. Since
 * systemd 246 systemd-notify waits until the manager has processed the message
 * (a barrier), so the short-lived sender is attributed correctly. Messages are
 * serialized: RELOADING=1 must not overtake the READY=1 that follows it.
 * Without NOTIFY_SOCKET (not under systemd) this does nothing.
 */
import { execFile } from 'node:child_process';

let chain: Promise<void> = Promise.resolve();

export function sdNotify(state: Record<string, string>, onError: (err: string) => void = () => undefined): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return chain;
  const args = [`--pid=${process.pid}`, ...Object.entries(state).map(([k, v]) => `${k}=${v}`)];
  chain = chain.then(
    () =>
      new Promise<void>((resolve) => {
        execFile('systemd-notify', args, { timeout: 5_000 }, (err, _stdout, stderr) => {
          if (err) onError(`systemd-notify ${args.join(' ')} failed: ${stderr.trim() || String(err)}`);
          resolve();
        });
      }),
  );
  return chain;
}

/** CLOCK_MONOTONIC in µs, as RELOADING=1 wants it in MONOTONIC_USEC. */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}
