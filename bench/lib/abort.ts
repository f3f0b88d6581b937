/** Aborted on Ctrl-C: wrk and curl runs in flight are killed instead of running to their end. */
export const benchAbort = new AbortController();
