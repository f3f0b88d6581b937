/** Two ends of one loopback TCP connection: `ours` for the code under test, `app` for the test to play the peer. */
import net from 'node:net';

export async function socketPair(): Promise<{ ours: net.Socket; app: net.Socket }> {
  const server = net.createServer();
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const ours = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => ours.once('connect', resolve).once('error', reject));
  const app = await accepted;
  // The connection outlives its listener; closing it now leaves nothing to clean up later.
  server.close();
  return { ours, app };
}
