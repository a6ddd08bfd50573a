/**
 * The dispatcher we build ourselves (no injected one): proxies from opts.env (not process.env), NO_PROXY bypass,
 * the default User-Agent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { parseReference } from '../../../src/oci/reference.js';
import { listTags } from '../../../src/remote/index.js';
import { proxySettings } from '../../../src/remote/transport.js';
import { FakeRegistry } from './fake-registry.js';

test('proxySettings: upper case first, then lower case; empty means unset', () => {
  assert.deepEqual(proxySettings({ HTTPS_PROXY: 'http://a:1', https_proxy: 'http://b:2', no_proxy: 'x' }), { httpProxy: undefined, httpsProxy: 'http://a:1', noProxy: 'x' });
  assert.deepEqual(proxySettings({ http_proxy: 'http://c:3', HTTP_PROXY: '' }), { httpProxy: 'http://c:3', httpsProxy: undefined, noProxy: undefined });
});

async function startProxy(t: { after: (fn: () => Promise<void> | void) => void }) {
  const seen: string[] = [];
  const proxy = http.createServer((req, res) => {
    // absolute-form forwarding for plain-HTTP targets
    seen.push(`${req.method} ${req.url}`);
    const u = new URL(req.url ?? '');
    const up = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  proxy.on('connect', (req, socket, head) => {
    seen.push(`CONNECT ${req.url}`);
    const [host, port] = (req.url ?? '').split(':');
    const up = net.connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  proxy.keepAliveTimeout = 50;
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => { proxy.closeAllConnections(); proxy.close(() => r()); }));
  return { url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, seen };
}

test('HTTP_PROXY from opts.env is used; NO_PROXY bypasses it; User-Agent is modctl/<version>', async (t) => {
  const reg = await FakeRegistry.start();
  t.after(() => reg.close());
  reg.putManifest('m/p', 'v1', Buffer.from('{}'), 'application/vnd.oci.image.manifest.v1+json');
  const proxy = await startProxy(t);
  const ref = parseReference(`${reg.host}/m/p`);
  const viaProxy = await listTags(ref, { plainHttp: true, env: { HOME: '/nonexistent', HTTP_PROXY: proxy.url } });
  assert.deepEqual(viaProxy, ['v1']);
  assert.ok(proxy.seen.length > 0, 'requests went through the proxy');
  assert.ok(proxy.seen.every((s) => s.includes(reg.host)), proxy.seen.join('\n'));
  const before = proxy.seen.length;
  assert.deepEqual(await listTags(ref, { plainHttp: true, env: { HOME: '/nonexistent', HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' } }), ['v1']);
  assert.equal(proxy.seen.length, before, 'NO_PROXY host bypasses the proxy');
  const ua = reg.log[reg.log.length - 1].headers['user-agent'];
  assert.match(String(ua), /^modctl\/\d+\.\d+\.\d+/);
});
