/**
 * Re-records test/fixtures/fastcgi/*.bin from real programs, so the codec tests read bytes
 * that m2gw's own encoder did not produce:
 *   php-fpm-response.bin   PHP-FPM answering record.php (headers, flushed chunks, stderr,
 *                          a 70 000-byte write split over records, END_REQUEST)
 *   php-fpm-not-found.bin  PHP-FPM's own "Primary script unknown" 404
 *   php-fpm-pipelined.bin  two requests written at once on one connection (ids 1 and 2)
 *   nginx-request.bin      the request nginx sends to a FastCGI server for a POST
 *
 * Run by hand only (it does nothing under `node --test`):
 *   M2GW_RECORD_FASTCGI=1 node dist/test/harness/record-fastcgi-fixtures.js
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RecordDecoder } from '../../src/upstream/fastcgi/record-decoder.js';
import { RecordType, encodeRecord, encodeRequestHead } from '../../src/upstream/fastcgi/records.js';
import { freePort, rawFastcgiExchange, startPhpFpm } from './php-fpm.js';
import { repoRoot } from '../unit/fixtures.js';

export const fastcgiFixturesDir = path.join(repoRoot, 'test/fixtures/fastcgi');
export const phpFixturesDir = path.join(repoRoot, 'test/fixtures/php');

function params(script: string, query = ''): Array<[string, string]> {
  return [
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['REQUEST_METHOD', 'GET'],
    ['SCRIPT_FILENAME', script.startsWith('/') && !script.startsWith(phpFixturesDir) ? script : path.join(phpFixturesDir, script)],
    ['SCRIPT_NAME', '/' + path.basename(script)],
    ['REQUEST_URI', '/' + path.basename(script) + (query ? '?' + query : '')],
    ['QUERY_STRING', query],
    ['DOCUMENT_ROOT', phpFixturesDir],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['SERVER_NAME', 'localhost'],
    ['SERVER_PORT', '80'],
    ['REMOTE_ADDR', '127.0.0.1'],
    ['REDIRECT_STATUS', '200'],
  ];
}

async function recordPhpFpm(): Promise<void> {
  const fpm = await startPhpFpm({ maxChildren: 1 });
  try {
    const response = await rawFastcgiExchange(
      fpm.address,
      encodeRequestHead({ recordId: 1, params: params('record.php'), stdin: null, keepConn: false }),
    );
    fs.writeFileSync(path.join(fastcgiFixturesDir, 'php-fpm-response.bin'), response);

    const notFound = await rawFastcgiExchange(
      fpm.address,
      encodeRequestHead({ recordId: 1, params: params('/nonexistent-m2gw/x.php'), stdin: null, keepConn: false }),
    );
    fs.writeFileSync(path.join(fastcgiFixturesDir, 'php-fpm-not-found.bin'), notFound);

    const pipelined = await rawFastcgiExchange(fpm.address, [
      Buffer.concat([
        encodeRequestHead({ recordId: 1, params: params('hello.php'), stdin: null, keepConn: true }),
        encodeRequestHead({ recordId: 2, params: params('status.php', 'code=404'), stdin: null, keepConn: false }),
      ]),
    ]);
    fs.writeFileSync(path.join(fastcgiFixturesDir, 'php-fpm-pipelined.bin'), pipelined);
  } finally {
    await fpm.stop();
  }
}

/** Puts nginx in front of a capturing FastCGI server and records what nginx sends for a POST. */
async function recordNginx(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-nginx-'));
  const captured: Buffer[] = [];
  const fcgiServer = net.createServer((sock) => {
    const decoder = new RecordDecoder({
      onStdout() {},
      onStderr() {},
      onEndRequest() {},
      onRecord(type, id, content) {
        if (type === RecordType.STDIN && content.length === 0) {
          // The whole request is in: answer it so nginx finishes cleanly.
          sock.write(encodeRecord(RecordType.STDOUT, id, Buffer.from('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok')));
          sock.write(encodeRecord(RecordType.STDOUT, id));
          const end = Buffer.alloc(8);
          sock.write(encodeRecord(RecordType.END_REQUEST, id, end));
        }
      },
    });
    sock.on('data', (c: Buffer) => {
      captured.push(c);
      decoder.push(c);
    });
  });
  const fcgiPort = await freePort();
  await new Promise<void>((r) => fcgiServer.listen(fcgiPort, '127.0.0.1', () => r()));
  const httpPort = await freePort();
  const conf = `
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  fastcgi_temp_path ${dir}/fastcgi;
  proxy_temp_path ${dir}/proxy;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${httpPort};
    root /srv/www;
    location / {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_keep_conn on;
      fastcgi_pass 127.0.0.1:${fcgiPort};
    }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const nginx = spawn('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir], { stdio: 'inherit' });
  try {
    for (let i = 0; i < 100; i++) {
      const ok = await new Promise<boolean>((r) => {
        const s = net.connect(httpPort, '127.0.0.1', () => {
          s.destroy();
          r(true);
        });
        s.on('error', () => r(false));
      });
      if (ok) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const body = 'name=m2gw&value=' + 'v'.repeat(100);
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: httpPort,
          method: 'POST',
          path: '/app/index.php/extra?x=1&y=%20z',
          headers: {
            Host: 'example.test',
            'Content-Type': 'application/x-www-form-urlencoded',
            'Content-Length': Buffer.byteLength(body),
            Cookie: 'a=1',
            'X-Long-Header': 'h'.repeat(300),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve());
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    fs.writeFileSync(path.join(fastcgiFixturesDir, 'nginx-request.bin'), Buffer.concat(captured));
  } finally {
    nginx.kill('SIGTERM');
    fcgiServer.close();
    await new Promise((r) => nginx.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env['M2GW_RECORD_FASTCGI'] === '1') {
  await recordPhpFpm();
  await recordNginx();
  console.log(`recorded into ${fastcgiFixturesDir}`);
}
