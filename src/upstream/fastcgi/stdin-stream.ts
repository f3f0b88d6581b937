/**
 * Sends a streamed upload (a BodyStream) as STDIN records as its bytes arrive: one
 * read at a time, and the next read only once the socket took the previous piece.
 * A PHP-FPM that stops reading fills the socket, we stop reading the body, the gateway
 * stops granting Mongrel2 credits, and Mongrel2 stops reading the client: memory stays
 * bounded end to end. Ends with the empty STDIN record after the body's last byte.
 */
import type net from 'node:net';
import type { BodyStream } from '../upstream.js';
import { endOfStdin, stdinRecords } from './records.js';
import type { StdinFileEvents, StdinFileStream } from './stdin-file.js';

export function streamBodyAsStdin(socket: net.Socket, requestId: number, body: BodyStream, events: StdinFileEvents): StdinFileStream {
  let over = false;
  let waitingDrain: (() => void) | null = null;
  const pump = async (): Promise<void> => {
    for (;;) {
      const piece = await body.read();
      if (over) return;
      if (piece === null) break;
      socket.cork();
      let ok = true;
      for (const b of stdinRecords(requestId, piece, false)) ok = socket.write(b);
      socket.uncork();
      if (!ok && !socket.destroyed) {
        await new Promise<void>((resolve) => {
          waitingDrain = resolve;
          socket.once('drain', resolve);
        });
        waitingDrain = null;
        if (over) return;
      }
    }
    over = true;
    socket.write(endOfStdin(requestId));
    events.done();
  };
  pump().catch((err: unknown) => {
    if (over) return;
    over = true;
    events.failed(err instanceof Error ? err : new Error(String(err)));
  });
  return {
    destroy() {
      if (over) return;
      over = true;
      if (waitingDrain) {
        socket.removeListener('drain', waitingDrain);
        waitingDrain();
      }
      body.cancel();
    },
  };
}
