import { createServer } from 'node:net';

/** A free TCP port on 127.0.0.1, found by binding port 0 and closing again. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (typeof address !== 'object' || !address) return reject(new Error('no address'));
      server.close(() => resolve(address.port));
    });
  });
}
