/**
 * Ports for tests that must name a port before anything listens on it (a
 * selector's SPort, say). They are taken below the kernel's ephemeral range,
 * so no client connection of another test can be handed them while the test
 * runs, and each is tried first on IPv4 and IPv6 loopback.
 */
import fs from 'node:fs';
import net from 'node:net';

const ephemeralStart = (): number =>
  Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);

const bindable = (port: number, host: string): Promise<boolean> => new Promise((resolve) => {
  const server = net.createServer();
  server.once('error', () => resolve(false));
  server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
});

const LOWEST = 10000;

/** The first of `count` consecutive free TCP ports, searched from a place that differs per process. */
export async function freePorts(count: number): Promise<number> {
  const top = ephemeralStart() - count;
  const span = top - LOWEST;
  if (span <= 0) throw new Error(`no room below the ephemeral range (starts at ${ephemeralStart()})`);
  const start = LOWEST + (process.pid * 7919) % span;
  for (let i = 0; i < span; i++) {
    const first = LOWEST + ((start - LOWEST + i) % span);
    let ok = true;
    for (let p = first; ok && p < first + count; p++) ok = await bindable(p, '127.0.0.1') && await bindable(p, '::1');
    if (ok) return first;
  }
  throw new Error(`no ${count} consecutive free ports in ${LOWEST}..${top}`);
}
