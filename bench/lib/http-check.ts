/** One request, to check a route answers what the benchmark expects before measuring it. */
import http from 'node:http';

export interface Answer {
  readonly status: number;
  readonly bytes: number;
  /** The first KiB of the body. */
  readonly head: string;
}

export function httpGet(url: string, timeoutMs = 5000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let bytes = 0;
      let head = '';
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (head.length < 1024) head += c.toString('latin1', 0, Math.min(c.length, 1024 - head.length));
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, head }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${url}`)));
    req.on('error', reject);
  });
}

/** Throws unless `url` answers 200 with `bytes` bytes of body (and `contains`, if given). */
export async function expectBody(url: string, bytes: number, contains?: string): Promise<void> {
  const a = await httpGet(url, 10_000);
  if (a.status !== 200 || a.bytes !== bytes || (contains !== undefined && !a.head.includes(contains))) {
    throw new Error(`${url}: expected 200 with ${bytes} bytes${contains ? ` containing "${contains}"` : ''}, got ${a.status} with ${a.bytes} bytes: ${a.head.slice(0, 200)}`);
  }
}
