// RFC 5424 syslog for the audit stream (#25), written by hand: the format is small and the libraries on npm either
// speak only RFC 3164 or are unmaintained. Transport: UDP (RFC 5426, one message per datagram) or TCP with
// octet-counting framing (RFC 6587 §3.4.1), which a message containing newlines cannot break.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import type { StreamRecord, AuditSink } from './stream';

/** SD-ID of our structured data: `name@<private enterprise number>`; 32473 is the number RFC 5612 sets aside for examples and documentation. */
export const SD_ID = 'stint@32473';
const APP_NAME = 'stint';
const SEVERITY = { notice: 5, info: 6 } as const;

/** Printable US-ASCII without spaces, at most `max` characters, or the nil value `-` (RFC 5424 §6.2). */
function header(value: string, max: number): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean || '-';
}

/** SD-PARAM values escape `"`, `\` and `]` (RFC 5424 §6.3.3). */
const paramValue = (value: string) => value.replace(/["\\\]]/g, (c) => `\\${c}`);

/** JSON with every non-ASCII character escaped: the MSG is then plain ASCII (MSG-ANY), which needs no BOM. */
const asciiJson = (value: unknown) => JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** Refusals, break-glass and failed proofs stand out as `notice`; the rest of the trail is `info`. */
function severity(action: string): number {
  return /^(refused\.|breakglass\.|stepup\.failed$|config\.reload_refused$)/.test(action) ? SEVERITY.notice : SEVERITY.info;
}

export function formatSyslog(record: StreamRecord, options: { facility: number; host?: string; pid?: number }): string {
  const host = header(options.host ?? hostname(), 255);
  const procId = header(String(options.pid ?? process.pid), 128);
  if (record.type === 'checkpoint') {
    const { checkpoint } = record;
    const pri = options.facility * 8 + SEVERITY.info;
    return `<${pri}>1 ${checkpoint.at} ${host} ${APP_NAME} ${procId} audit.checkpoint [${SD_ID} seq="${checkpoint.seq}" hash="${paramValue(checkpoint.hash)}"] ${asciiJson(record)}`;
  }
  const { entry } = record;
  const pri = options.facility * 8 + severity(entry.action);
  const sd = `[${SD_ID} seq="${entry.seq}" hash="${paramValue(entry.hash)}" prevHash="${paramValue(entry.prevHash)}"]`;
  return `<${pri}>1 ${entry.at} ${host} ${APP_NAME} ${procId} ${header(entry.action, 32)} ${sd} ${asciiJson(record)}`;
}

export interface SyslogTarget { host: string; port: number; protocol: 'udp' | 'tcp'; facility: number }

export function syslogSink(target: SyslogTarget): AuditSink {
  const name = `syslog-${target.protocol}:${target.host}:${target.port}`;
  return target.protocol === 'udp' ? udpSink(name, target) : tcpSink(name, target);
}

function udpSink(name: string, target: SyslogTarget): AuditSink {
  let socket: UdpSocket | undefined;
  const open = () => {
    if (!socket) {
      socket = createSocket(target.host.includes(':') ? 'udp6' : 'udp4');
      socket.unref();
    }
    return socket;
  };
  return {
    name,
    async send(records) {
      const udp = open();
      for (const record of records) {
        const message = Buffer.from(formatSyslog(record, { facility: target.facility }));
        await new Promise<void>((resolve, reject) => udp.send(message, target.port, target.host, (error) => (error ? reject(error) : resolve())));
      }
    },
    async close() {
      const udp = socket;
      socket = undefined;
      if (udp) await new Promise<void>((resolve) => udp.close(() => resolve()));
    },
  };
}

const CONNECT_TIMEOUT_MS = 5_000;

function tcpSink(name: string, target: SyslogTarget): AuditSink {
  let socket: Socket | undefined;
  const open = () => new Promise<Socket>((resolve, reject) => {
    if (socket && !socket.destroyed) return resolve(socket);
    const next = connect({ host: target.host, port: target.port });
    next.setTimeout(CONNECT_TIMEOUT_MS, () => next.destroy(new Error(`syslog ${target.host}:${target.port}: connect timed out`)));
    next.once('connect', () => { next.setTimeout(0); next.unref(); socket = next; resolve(next); });
    // Before connecting, an error fails this send; after, it ends the connection (a write in flight fails with it),
    // and the next send opens a new one. Either way an error is handled here, never thrown at the process.
    next.on('error', (error) => { if (socket !== next) reject(error); });
    next.on('close', () => { if (socket === next) socket = undefined; });
  });
  return {
    name,
    async send(records) {
      const tcp = await open();
      const frames = records.map((record) => {
        const message = Buffer.from(formatSyslog(record, { facility: target.facility }));
        return Buffer.concat([Buffer.from(`${message.length} `), message]);
      });
      await new Promise<void>((resolve, reject) => tcp.write(Buffer.concat(frames), (error) => (error ? reject(error) : resolve())));
    },
    async close() {
      const tcp = socket;
      socket = undefined;
      if (tcp) await new Promise<void>((resolve) => tcp.end(() => resolve()));
    },
  };
}
