// The companion's reading of `ss -HtinpO` (server/bastion/traffic.ts): which socket is a session's connection, the
// client's address in each form ss prints it, and the two directions. The real `ss` against a real sshd is in
// bastion.test.ts (bytes each way …); these are the forms a loopback test cannot produce.
import { describe, expect, it } from 'vitest';
import { parseSs } from '../../server/bastion/traffic';

const line = (peer: string, users: string, info: string) => `ESTAB 0      0      10.0.0.5:22 ${peer} users:(${users}) cubic wscale:7,7 rto:204 ${info}`;

describe('reading the kernel\'s counters from ss', () => {
  it('gives each pid holding the socket its bytes each way and the peer\'s address (IPv4, IPv6, mapped IPv4)', () => {
    const output = [
      line('192.0.2.7:51234', '("sshd",pid=301,fd=4),("sshd",pid=300,fd=4)', 'bytes_sent:3006445 bytes_acked:3006446 bytes_received:5007418 segs_out:142'),
      line('[2001:db8::9]:40000', '("sshd",pid=401,fd=4),("sshd",pid=400,fd=4)', 'bytes_acked:11 bytes_received:20'),
      line('[::ffff:198.51.100.3]:40001', '("sshd",pid=500,fd=4)', 'bytes_acked:1 bytes_received:0'),
      'LISTEN 0      128    0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))',
    ].join('\n');
    const found = parseSs(output);
    expect(found.get(300)).toEqual({ bytesFromClient: 5_007_418, bytesToClient: 3_006_445, from: '192.0.2.7' });
    expect(found.get(301)).toEqual(found.get(300));
    expect(found.get(400)).toEqual({ bytesFromClient: 20, bytesToClient: 10, from: '2001:db8::9' });
    expect(found.get(500)).toEqual({ bytesFromClient: 0, bytesToClient: 0, from: '198.51.100.3' });
    expect(found.has(1)).toBe(false); // a listening socket carries no session
  });

  it('keeps a pid\'s first socket (the recorded monitor holds one; its child also holds the forwards)', () => {
    const output = [
      line('192.0.2.7:51234', '("sshd",pid=301,fd=4),("sshd",pid=300,fd=4)', 'bytes_acked:101 bytes_received:200'),
      line('10.0.0.9:5432', '("sshd",pid=301,fd=7)', 'bytes_acked:9001 bytes_received:9000'),
    ].join('\n');
    expect(parseSs(output).get(300)).toMatchObject({ bytesFromClient: 200, bytesToClient: 100 });
  });
});
