/** Polling helpers for tests that wait on real processes and sockets. */
import net from 'node:net';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `predicate` until it returns a truthy value, and returns that value.
 * Throws after `timeoutMs`, naming `what` so a failed test says what it waited for.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs = 5000,
  intervalMs = 10,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`waitFor: ${what} not met within ${timeoutMs} ms${cause}`);
    }
    await sleep(intervalMs);
  }
}

/** Resolves true if a TCP connection to host:port succeeds (the connection is closed at once). */
export function canConnect(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** Waits until host:port accepts TCP connections. */
export async function waitForTcp(host: string, port: number, timeoutMs = 5000): Promise<void> {
  await waitFor(() => canConnect(host, port, Math.min(500, timeoutMs)), timeoutMs, 20, `${host}:${port} accepting connections`);
}

/** Waits until nothing accepts TCP connections on host:port any more. */
export async function waitForTcpClosed(host: string, port: number, timeoutMs = 5000): Promise<void> {
  await waitFor(async () => !(await canConnect(host, port, 200)), timeoutMs, 20, `${host}:${port} closed`);
}
