/** The smallest valid config text for process tests: one handler, one upstream, one route. */
export function minimalConfigText(gateway = 'workers = 1', extra = ''): string {
  return `[gateway]
${gateway}
${extra}
[[handler]]
send_spec = "tcp://127.0.0.1:9"
recv_spec = "tcp://127.0.0.1:11"
[upstream.app]
type = "http"
url = "http://127.0.0.1:1"
[[route]]
prefix = "/"
upstream = "app"
`;
}
