/**
 * DnsLookup and GetUrl (services/sensor/policy-actions.ts): when the kernel
 * posts the event of a selector with them, the sensor asks a name of a DNS
 * server and fetches a URL — here a DNS server (UDP) and an HTTP server of
 * the test's own on loopback, which record what they were asked.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { startSensor, type SensorHarness } from '../support/sensor.js';
import { BUSYBOX, copyOf, policyEvents, policyYaml, run, scratch, scratchFile, withPolicy } from '../support/policy.js';
import { waitFor } from '../support/wait.js';

let h: SensorHarness;
let dns: dgram.Socket;
let web: http.Server;
/** Names the DNS server was asked, paths the HTTP server was asked for. */
const asked: string[] = [];
const fetched: string[] = [];

/** The question's name of a DNS query: labels from byte 12. */
function questionName(msg: Buffer): string {
  const labels: string[] = [];
  for (let at = 12; at < msg.length && msg[at]! > 0; at += msg[at]! + 1) labels.push(msg.toString('ascii', at + 1, at + 1 + msg[at]!));
  return labels.join('.');
}

test.before(async () => {
  dns = dgram.createSocket('udp4', (msg) => { asked.push(questionName(msg)); });
  await new Promise<void>((resolve) => dns.bind(0, '127.0.0.1', resolve));
  web = http.createServer((req, res) => { fetched.push(req.url ?? ''); res.end('canary'); });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  h = startSensor('actions', undefined, { policyActions: { dnsServers: [`127.0.0.1:${dns.address().port}`], timeoutMs: 500 } });
});

test.after(() => {
  h?.stop();
  dns?.close();
  web?.close();
  fs.rmSync(scratch, { recursive: true, force: true });
});

test('DnsLookup and GetUrl: the event posts with its action, and the sensor asks the name and fetches the URL', async () => {
  const cat = copyOf(BUSYBOX, 'cat');
  const file = scratchFile('canary');
  const url = `http://127.0.0.1:${(web.address() as net.AddressInfo).port}/canary?file=passwd`;
  const yaml = policyYaml('canary', { kprobes: [{
    call: 'fd_install', syscall: false, args: [{ index: 0, type: 'int' }, { index: 1, type: 'file' }],
    selectors: [{
      matchBinaries: [{ operator: 'In', values: [cat] }], matchArgs: [{ index: 1, operator: 'Equal', values: [file] }],
      matchActions: [{ action: 'DnsLookup', argFqdn: 'canary.vigil.test' }, { action: 'GetUrl', argUrl: url }],
    }],
  }] });
  await withPolicy(h, yaml, async () => {
    const r = await run(cat, ['cat', file]);
    const [event] = await policyEvents(h, 'canary', [r.pid]);
    assert.equal(event?.action, 8, 'KPROBE_ACTION_DNSLOOKUP, its first action');
    await waitFor('the DNS question', () => (asked.includes('canary.vigil.test') ? true : undefined));
    await waitFor('the GET', () => (fetched.includes('/canary?file=passwd') ? true : undefined));
  });
  assert.equal(h.sensor.statsMessage().policyActionDropped, 0);
});
