#!/usr/bin/env bash
# Brings up the demo: a real Mongrel2 1.12 on :6767, m2gw, a sample HTTP app and
# PHP-FPM with a tiny PHP app. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=${DEMO_PORT:-6767}

bash scripts/install-deps.sh
npm run --silent build

DIR="$ROOT/demo-run"
rm -rf "$DIR"
mkdir -p "$DIR"/{run,logs,tmp,fpm}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
SEND=$(free_port); RECV=$(free_port); APP=$(free_port); FPM=$(free_port)

cat > "$DIR/mongrel2.conf" <<CONF
m2gw = Handler(send_spec='tcp://127.0.0.1:$SEND', send_ident='d3m0d3m0-0000-4000-8000-000000000001',
               recv_spec='tcp://127.0.0.1:$RECV', recv_ident='')
main = Server(uuid="m2gw-demo", access_log="/logs/access.log", error_log="/logs/error.log",
              chroot="./", pid_file="/run/mongrel2.pid", default_host="localhost", name="demo",
              bind_addr="127.0.0.1", port=$PORT,
              hosts=[Host(name="localhost", routes={'/': m2gw})])
settings = {"zeromq.threads": 1, "limits.content_length": 20480, "upload.temp_store": "/tmp/upload.XXXXXX",
            "upload.temp_store_mode": "0666", "download.flow_control": 1, "server.daemonize": 0}
servers = [main]
CONF

cat > "$DIR/gw.toml" <<CONF
[log]
format = "text"

[[handler]]
send_spec = "tcp://127.0.0.1:$SEND"
recv_spec = "tcp://127.0.0.1:$RECV"
chroot = "$DIR"

[upstream.app]
type = "http"
url = "http://127.0.0.1:$APP"

[upstream.php]
type = "fastcgi"
address = "127.0.0.1:$FPM"
document_root = "$ROOT/demo/php"
front_controller = "index.php"
max_connections = 2

[[route]]
prefix = "/app/"
upstream = "app"

[[route]]
prefix = "/php/"
upstream = "php"
strip_prefix = true
CONF

FPM_BIN=$(command -v php-fpm8.2 || ls /usr/sbin/php-fpm* 2>/dev/null | head -n1)
cat > "$DIR/fpm/php-fpm.conf" <<CONF
[global]
error_log = $DIR/fpm/error.log
daemonize = no
[demo]
listen = 127.0.0.1:$FPM
pm = static
pm.max_children = 2
clear_env = no
catch_workers_output = yes
CONF
extra=(); [ "$(id -u)" = 0 ] && extra=(-R)
"$FPM_BIN" -F -y "$DIR/fpm/php-fpm.conf" "${extra[@]}" > "$DIR/fpm/stdout.log" 2>&1 & pids+=($!)
node demo/app.mjs "$APP" > "$DIR/app.log" 2>&1 & pids+=($!)
(cd "$DIR" && LOGNAME=${LOGNAME:-demo} m2sh load -config mongrel2.conf -db config.sqlite > logs/m2sh.log 2>&1)
(cd "$DIR" && exec mongrel2 config.sqlite m2gw-demo > logs/mongrel2.out 2>&1) & pids+=($!)
node bin/m2gw start --config "$DIR/gw.toml" > "$DIR/m2gw.log" 2>&1 & pids+=($!)

for _ in $(seq 1 50); do
  if curl -fsS "http://127.0.0.1:$PORT/app/ping" > /dev/null 2>&1; then break; fi
  sleep 0.2
done
cat <<MSG

m2gw demo is up: Mongrel2 1.12 on http://127.0.0.1:$PORT → m2gw → HTTP app and PHP-FPM
  curl -i http://127.0.0.1:$PORT/app/hello?x=1          # HTTP upstream (Node sample app)
  curl -N http://127.0.0.1:$PORT/app/stream             # streamed, chunk by chunk
  curl -i http://127.0.0.1:$PORT/php/                    # PHP-FPM (index.php)
  curl -i 'http://127.0.0.1:$PORT/php/any/path?q=1'      # front controller
  node demo/ws-client.mjs ws://127.0.0.1:$PORT/app/ws hello again   # WebSocket echo
Logs: $DIR/m2gw.log (access log lines), $DIR/logs/
Ctrl-C to stop.
MSG
if [ "${DEMO_EXIT_AFTER_START:-0}" = 1 ]; then exit 0; fi
wait
