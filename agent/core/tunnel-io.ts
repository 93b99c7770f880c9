// The tunnel's byte path, shaped for throughput (#22). ssh2 works per SSH packet (32 KiB at most) and per socket
// read, and Node reads a socket 64 KiB at a time into a fresh buffer: left alone, a GiB from the bastion costs 16k
// reads, as many buffers for the GC, and one write syscall (and one wakeup of psql) per packet. Here:
//  - the bastion socket reads into 1 MiB slabs (`onread`): a read takes whatever the kernel holds, up to the rest of
//    the slab (~200 KiB on average under bulk load here, against 64 KiB), so fewer reads, callbacks and allocations.
//    Slabs are never reused: ssh2 decrypts in place and hands on views into them (channel data, and the KEXINIT it
//    keeps until a rekey is done), so a slab lives exactly as long as the last view into it;
//  - while ssh2 parses one such read, every local socket it writes to is corked, and uncorked when the read is done:
//    the packets of one read leave in one writev instead of one write each;
//  - writes to the bastion (queries, window adjusts) are corked for the rest of the event-loop turn, so the packets
//    of several connections (pgbench's 8 clients) leave in one writev.
// No data is held longer than one read or one event-loop turn; backpressure stays with stream.pipe and the SSH window.
import { connect as tcpConnect, type Socket } from 'node:net';

/** Bytes per read slab. A read gets the rest of the current slab; a new slab is started when less than MIN_READ is left. */
const SLAB_BYTES = 1 << 20;
const MIN_READ = 256 << 10;
/** The local sockets' write buffer: a whole read's packets fit, so a corked batch is not cut short by backpressure. */
export const LOCAL_HIGH_WATER_MARK = SLAB_BYTES;

export interface BastionSocket {
  socket: Socket;
  /** Cork `local` until the bastion read being parsed now is done (no-op outside a read). */
  batchLocal(local: Socket): void;
  /** Cork the bastion socket until the end of this event-loop turn. */
  batchOut(): void;
}

export function connectBastion(host: string, port: number): BastionSocket {
  let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  let used = 0;
  let parsing = false;
  const corked: Socket[] = [];
  let outCorked = false;

  const socket: Socket = tcpConnect({
    host,
    port,
    noDelay: true,
    onread: {
      // Called for the first read and after each callback: the unused rest of the slab. Slabs are never reused; a
      // packet ssh2 hands on is a view into one, kept alive by whoever holds the packet.
      buffer: () => slab.subarray(used),
      callback: (bytes: number, buffer: Uint8Array) => {
        const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
        used += bytes;
        if (SLAB_BYTES - used < MIN_READ) {
          slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
          used = 0;
        }
        parsing = true;
        socket.cork();
        try {
          socket.emit('data', chunk);
        } finally {
          parsing = false;
          for (const local of corked.splice(0)) local.uncork();
          socket.uncork();
        }
        return true;
      },
    },
  });

  return {
    socket,
    batchLocal(local) {
      if (!parsing || local.writableCorked) return;
      local.cork();
      corked.push(local);
    },
    batchOut() {
      if (outCorked || parsing) return;
      outCorked = true;
      socket.cork();
      setImmediate(() => {
        outCorked = false;
        socket.uncork();
      });
    },
  };
}
