/**
 * Every metric m2gw exports, in one place: a series the supervisor and the workers
 * both produce must have the same name and help text to aggregate.
 */
export const METRIC = {
  requests: { name: 'm2gw_requests_total', help: 'Requests answered, by route prefix, HTTP status and upstream' },
  duration: { name: 'm2gw_request_duration_seconds', help: 'Time from the request reaching m2gw to the end of its response' },
  bytes: { name: 'm2gw_response_bytes_total', help: 'Response bytes sent to clients' },
  upstreamErrors: { name: 'm2gw_upstream_errors_total', help: 'Requests that ended in an error, by upstream and error code (M2GW_*)' },
  disconnectAborts: { name: 'm2gw_disconnect_aborts_total', help: 'Requests aborted because the client disconnected' },
  badFrames: { name: 'm2gw_bad_frames_total', help: 'Mongrel2 messages dropped as malformed' },
  inFlight: { name: 'm2gw_requests_in_flight', help: 'Requests being answered now' },
  connections: { name: 'm2gw_client_connections', help: 'Client connections the workers hold state for' },
  upstreamInFlight: { name: 'm2gw_upstream_in_flight', help: 'Requests forwarded to an upstream and not finished' },
  upstreamQueue: { name: 'm2gw_upstream_queue_depth', help: 'Requests waiting for an upstream connection' },
  upstreamHealthyServers: { name: 'm2gw_upstream_healthy_servers', help: 'Servers of an upstream currently in rotation (summed over workers)' },
  upstreamPool: { name: 'm2gw_upstream_pool_connections', help: 'Upstream connections by state (busy, idle, max), summed over workers' },
  workerRestarts: { name: 'm2gw_worker_restarts_total', help: 'Workers restarted after they died' },
  reloads: { name: 'm2gw_reloads_total', help: 'Configuration reloads, by result (ok, invalid, failed)' },
  workers: { name: 'm2gw_workers', help: 'Worker processes, by state (active, retiring, starting)' },
  parked: { name: 'm2gw_parked_messages', help: 'Messages held while no worker could take a new connection' },
  websockets: { name: 'm2gw_websocket_connections', help: 'WebSockets open now' },
  websocketMessages: { name: 'm2gw_websocket_messages_total', help: 'WebSocket messages relayed, by direction (to_upstream, to_client)' },
  websocketBytes: { name: 'm2gw_websocket_bytes_total', help: 'WebSocket payload bytes relayed, by direction (to_upstream, to_client)' },
  websocketCloses: { name: 'm2gw_websocket_closes_total', help: 'WebSockets ended, by close code and the side that closed (client, upstream, m2gw)' },
  limitHits: { name: 'm2gw_limit_hits_total', help: 'Times a cap refused or cut something (pipeline_queue, connection_states, upload_states, refused_uploads, upstream_header_count, upstream_header_bytes, queued_reply_bytes, send_timeout)' },
  warnings: { name: 'm2gw_warnings_total', help: 'Warnings by kind, counted exactly (their log lines are rate-limited to one per kind per second)' },
  orphanControls: {
    name: 'm2gw_orphan_control_messages_total',
    help: 'Mongrel2 control messages for connections this m2gw never saw, by handler (a steady rate: another process PULLs from the same send_spec)',
  },
  startTime: { name: 'm2gw_start_time_seconds', help: 'When the supervisor started, seconds since the epoch' },
} as const;

export const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
