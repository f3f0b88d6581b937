/**
 * The matching mongrel2.conf + gw.toml pair `m2gw init` writes. Pure: inputs in, text
 * out. Both files name the same handler specs, chroot and upload template, so the
 * pair passes `m2gw check --mongrel2` as generated; the comments point at what an
 * operator usually changes (host name, ports, paths) and say which other file must
 * change with it, because a one-sided edit is the classic silent failure.
 */

export interface InitInput {
  /** Base URL of the HTTP application, or null for none. */
  http: string | null;
  /** PHP document root (absolute), or null for none. */
  php: string | null;
  /** PHP-FPM address: "unix:/path" or "host:port". */
  fpm: string;
  /** Mongrel2's chroot, absolute (the directory the files are written to, by default). */
  chroot: string;
  /** Mongrel2's HTTP port. */
  port: number;
  sendSpec: string;
  recvSpec: string;
  /** Mongrel2 server uuid and Handler send_ident: fresh for every init. */
  serverUuid: string;
  sendIdent: string;
}

export interface RouteLayout {
  httpPrefix: string | null;
  phpPrefix: string | null;
}

/** One upstream gets "/"; with both, PHP lives under /php/ and the HTTP app gets the rest. */
export function routeLayout(input: Pick<InitInput, 'http' | 'php'>): RouteLayout {
  if (input.http !== null && input.php !== null) return { httpPrefix: '/', phpPrefix: '/php/' };
  return { httpPrefix: input.http !== null ? '/' : null, phpPrefix: input.php !== null ? '/' : null };
}

export const UPLOAD_TEMP_STORE = '/tmp/upload.XXXXXX';
/** Mongrel2's default; larger bodies are spooled to upload.temp_store and m2gw streams the file. */
export const CONTENT_LENGTH_LIMIT = 20480;

/** m2sh has no escapes: a value with a quote, backslash or newline cannot be written. */
export function m2shLiteral(value: string): string {
  if (/["\\\n\r]/.test(value)) throw new Error(`cannot write ${JSON.stringify(value)} into mongrel2.conf (m2sh has no escapes)`);
  return `"${value}"`;
}

/** A TOML basic string. */
function tomlString(value: string): string {
  return JSON.stringify(value);
}

export function renderMongrel2Conf(c: InitInput): string {
  const lit = m2shLiteral;
  return `# Mongrel2 configuration written by \`m2gw init\`; gw.toml next to it is its other half.
#
# Compile and run (from this directory, as root: Mongrel2 chroots into chroot= and then
# runs as the owner of that directory):
#   m2sh load -config mongrel2.conf -db config.sqlite
#   m2gw check --config gw.toml --mongrel2 config.sqlite   # both files still agree?
#   mongrel2 config.sqlite ${c.serverUuid}
# run/, logs/ and tmp/ must exist inside the chroot (m2gw init created them).

# The handler m2gw serves. CHANGE send_spec/recv_spec here AND in gw.toml's [[handler]]
# together: Mongrel2 binds them, m2gw connects. send_ident is this handler's identity
# (any fresh UUID); recv_ident '' accepts replies from any m2gw.
m2gw = Handler(
    send_spec=${lit(c.sendSpec)},
    send_ident=${lit(c.sendIdent)},
    recv_spec=${lit(c.recvSpec)},
    recv_ident="")

main = Server(
    uuid=${lit(c.serverUuid)},
    # Every path below is inside the chroot. CHANGE chroot here AND [[handler]] chroot in gw.toml.
    chroot=${lit(c.chroot)},
    access_log="/logs/access.log",
    error_log="/logs/error.log",
    pid_file="/run/mongrel2.pid",
    name="main",
    # CHANGE: the address and port browsers connect to.
    bind_addr="0.0.0.0",
    port=${c.port},
    # CHANGE "localhost" to your site's host name (default_host also takes any other Host).
    default_host="localhost",
    hosts=[
        Host(name="localhost", routes={
            # Every path goes to m2gw; gw.toml's [[route]] tables pick the upstream.
            # Static files could be served by Mongrel2 itself with a Dir() route here.
            "/": m2gw
        })
    ]
)

settings = {
    # m2gw paces replies by the bytes Mongrel2 reports written: keep this on, or slow
    # clients make Mongrel2 drop connections and m2gw cannot bound its memory.
    "download.flow_control": 1,
    # Request bodies over limits.content_length are written to a file here (inside the
    # chroot) and m2gw streams that file upstream, then deletes it. CHANGE it here AND
    # upload_temp_store in gw.toml together.
    "upload.temp_store": ${lit(UPLOAD_TEMP_STORE)},
    # m2gw must be able to read (and delete) the files: see the README on permissions.
    "upload.temp_store_mode": "0640",
    "limits.content_length": ${CONTENT_LENGTH_LIMIT},
    "server.daemonize": 0
}

servers = [main]
`;
}

export function renderGwToml(c: InitInput): string {
  const layout = routeLayout(c);
  const parts: string[] = [
    `# m2gw configuration written by \`m2gw init\`; mongrel2.conf next to it is its other half.
#
#   m2gw check --config gw.toml                             # this file alone
#   m2gw check --config gw.toml --mongrel2 config.sqlite    # against Mongrel2's compiled config
#   m2gw start --config gw.toml
# config/gw.toml in the m2gw sources shows every key with its default.

[gateway]
workers = 1                     # where Mongrel2 and the app share the CPUs, one is fastest
                                # (bench/README.md); raise it, or "auto" (one per CPU), where cores are free
drain_timeout = "30s"           # SIGTERM: how long in-flight requests may finish
# spare_worker = false          # saves the pre-forked spare's ~70 MiB; restarts then take ~0.3 s longer
# pid_file = "/run/m2gw/m2gw.pid"

# Admin listener: /healthz, /readyz, /metrics, /status (m2gw status). Keep it on loopback.
# [admin]
# listen = "127.0.0.1:9180"

[log]
level = "info"
format = "json"
# file = "/var/log/m2gw/m2gw.log"   # absent: stdout (the journal under systemd)

# Mongrel2's Handler in mongrel2.conf: CHANGE both files together.
[[handler]]
send_spec = ${tomlString(c.sendSpec)}
recv_spec = ${tomlString(c.recvSpec)}
recv_ident = ""
# Mongrel2's chroot as m2gw sees it (upload files are resolved under it).
chroot = ${tomlString(c.chroot)}
# Mongrel2's upload.temp_store (inside the chroot).
upload_temp_store = ${tomlString(UPLOAD_TEMP_STORE)}
`,
  ];
  if (c.http !== null) {
    parts.push(`
# The HTTP application. CHANGE url to where it listens; several servers:
#   urls = ["http://127.0.0.1:3000", "http://127.0.0.1:3001"]
[upstream.app]
type = "http"
url = ${tomlString(c.http)}
`);
  }
  if (c.php !== null) {
    parts.push(`
# PHP-FPM. CHANGE address to the pool's listen (Debian: unix:/run/php/php8.2-fpm.sock).
# Each kept-alive connection pins one PHP-FPM child: keep max_connections <= the pool's
# pm.max_children (5 in Debian's default www pool); fpm_pool_config lets m2gw check compare.
[upstream.php]
type = "fastcgi"
address = ${tomlString(c.fpm)}
document_root = ${tomlString(c.php)}
index = "index.php"
# front_controller = "index.php"   # Laravel, Symfony, ...: what is not a file goes to it
serve_static = true               # other files under document_root are served as they are
max_connections = 5
# fpm_pool_config = "/etc/php/8.2/fpm/pool.d/www.conf"
`);
  }
  // Longest prefix wins, so the order here is only for reading.
  if (layout.phpPrefix !== null) {
    const strip = layout.phpPrefix !== '/';
    parts.push(`
[[route]]
prefix = ${tomlString(layout.phpPrefix)}
upstream = "php"${strip ? `\nstrip_prefix = true              # ${layout.phpPrefix}x.php runs <document_root>/x.php` : ''}
max_body = "100MiB"
`);
  }
  if (layout.httpPrefix !== null) {
    parts.push(`
[[route]]
prefix = ${tomlString(layout.httpPrefix)}
upstream = "app"
max_body = "100MiB"
`);
  }
  return parts.join('');
}
