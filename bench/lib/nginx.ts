/**
 * nginx as the reference front end: a private prefix, config and port. One instance per
 * variant (proxy, FastCGI, FastCGI with keep_conn) so that kept-alive FastCGI connections
 * of one variant never pin PHP-FPM children during another's measurement.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../test/harness/ports.js';
import { waitForTcp } from '../../test/harness/wait.js';
import type { ProcessGroup } from './procs.js';

export type NginxVariant =
  | { kind: 'proxy'; appPort: number }
  | { kind: 'fastcgi'; fpmAddress: string; documentRoot: string; keepConn: boolean; fpmChildren: number };

export interface NginxInstance {
  readonly port: number;
  readonly pid: number;
  readonly workers: number;
  readonly dir: string;
  stop(): Promise<void>;
}

/** The params Debian ships in /etc/nginx/fastcgi_params, for machines without that file. */
const FASTCGI_PARAMS = `
fastcgi_param  QUERY_STRING       $query_string;
fastcgi_param  REQUEST_METHOD     $request_method;
fastcgi_param  CONTENT_TYPE       $content_type;
fastcgi_param  CONTENT_LENGTH     $content_length;
fastcgi_param  SCRIPT_NAME        $fastcgi_script_name;
fastcgi_param  REQUEST_URI        $request_uri;
fastcgi_param  DOCUMENT_URI       $document_uri;
fastcgi_param  DOCUMENT_ROOT      $document_root;
fastcgi_param  SERVER_PROTOCOL    $server_protocol;
fastcgi_param  REQUEST_SCHEME     $scheme;
fastcgi_param  HTTPS              $https if_not_empty;
fastcgi_param  GATEWAY_INTERFACE  CGI/1.1;
fastcgi_param  SERVER_SOFTWARE    nginx/$nginx_version;
fastcgi_param  REMOTE_ADDR        $remote_addr;
fastcgi_param  REMOTE_PORT        $remote_port;
fastcgi_param  REMOTE_USER        $remote_user;
fastcgi_param  SERVER_ADDR        $server_addr;
fastcgi_param  SERVER_PORT        $server_port;
fastcgi_param  SERVER_NAME        $server_name;
fastcgi_param  REDIRECT_STATUS    200;
`;

export function nginxWorkerCount(setting: string): number {
  return setting === 'auto' ? os.availableParallelism() : Math.max(1, Number(setting));
}

function fpmServer(address: string): string {
  return address.startsWith('unix:') ? `unix:${address.slice(5)}` : address;
}

function locationBlock(v: NginxVariant, workers: number): { upstream: string; server: string } {
  if (v.kind === 'proxy') {
    return {
      upstream: `upstream app { server 127.0.0.1:${v.appPort}; keepalive 64; keepalive_requests 1000000; keepalive_timeout 120s; }`,
      server: `location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; }`,
    };
  }
  const params = fs.existsSync('/etc/nginx/fastcgi_params') ? 'include /etc/nginx/fastcgi_params;' : FASTCGI_PARAMS;
  // With keep_conn each cached connection pins a PHP-FPM child, and every nginx worker
  // has its own cache: more cached connections than children would stall the pool.
  const keep = v.keepConn ? `keepalive ${Math.max(1, Math.floor(v.fpmChildren / workers))};` : '';
  return {
    upstream: `upstream php { server ${fpmServer(v.fpmAddress)}; ${keep} }`,
    server: `root ${v.documentRoot};
    location ~ \\.php$ {
      fastcgi_pass php;
      ${params}
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      ${v.keepConn ? 'fastcgi_keep_conn on;' : ''}
    }`,
  };
}

export async function startNginx(group: ProcessGroup, v: NginxVariant, workersSetting: string): Promise<NginxInstance> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-bench-nginx-'));
  group.defer('nginx-dir', () => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'tmp'));
  const port = await freePort();
  const workers = nginxWorkerCount(workersSetting);
  const { upstream, server } = locationBlock(v, workers);
  const isRoot = process.getuid?.() === 0;
  const conf = `
${isRoot ? 'user root root;' : ''}
worker_processes ${workers};
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  # Mongrel2 always writes an access log; so does this nginx, for parity.
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  default_type application/octet-stream;
  # Neither Mongrel2 nor m2gw closes a client connection after N requests; nginx's default does at 1000.
  keepalive_requests 1000000;
  ${upstream}
  server {
    listen 127.0.0.1:${port};
    server_name localhost;
    ${server}
  }
}
`;
  const confFile = path.join(dir, 'nginx.conf');
  fs.writeFileSync(confFile, conf);
  const name = `nginx-${v.kind}${v.kind === 'fastcgi' && v.keepConn ? '-keep' : ''}`;
  const proc = group.spawn(name, 'nginx', ['-p', dir, '-c', confFile, '-e', `${dir}/error.log`], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await waitForTcp('127.0.0.1', port, 10_000);
  } catch (err) {
    const log = fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : '';
    throw new Error(`${name} did not start: ${(err as Error).message}\n${proc.tail()}\n${log}`);
  }
  return {
    port,
    pid: proc.pid,
    workers,
    dir,
    stop: async () => {
      // SIGQUIT: graceful, but wrk has finished so there is nothing to wait for.
      await proc.stop('SIGTERM', 3000);
    },
  };
}
