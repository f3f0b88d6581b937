/**
 * The caps on what one client connection, or all of them together, can make a worker hold.
 * Each is far above what a well-behaved client needs and low enough that a hostile one cannot
 * grow memory without bound; each hit is counted (m2gw_limit_hits_total{limit}). Constants
 * rather than config keys: they protect the process, they are not tuning knobs.
 */

/**
 * Pipelined requests waiting behind the active one on one connection. Browsers do not
 * pipeline at all and load tools stay well under this. The request past it is answered 503
 * in its turn and the connection closed; what the client sends after it is dropped.
 * Queued requests also count toward `max_in_flight` (see Pipeline).
 */
export const MAX_PIPELINED_PER_CONNECTION = 128;

/**
 * Client connections one worker holds state for. Mongrel2 bounds its own connections (and
 * says when one leaves), so this only matters for a peer that invents conn ids; a new
 * connection past it is answered 503 and closed without any state kept.
 */
export const MAX_CONNECTION_STATES = 100_000;

/** Uploads between their start and done messages in one worker; past it a start is 503 and closed. */
export const MAX_UPLOAD_STATES = 10_000;

/**
 * Refused upload paths remembered per worker across the close of their connection, so their
 * done message (if Mongrel2 already had the whole body) deletes the file. Oldest forgotten first.
 */
export const MAX_REFUSED_UPLOADS = 4096;
/** ...and for at most this long (Mongrel2 sends the done at once when it had the whole body). */
export const REFUSED_UPLOAD_TTL_MS = 10 * 60_000;
