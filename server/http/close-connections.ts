// Node's server.close() ends the keep-alive connections that are idle at that moment, and no other: a client that
// connected and has yet to send its first request (a pool's spare socket, a peer gone without a FIN), or one whose
// request was still being answered and then stays open for the next, kept the server's close waiting as long as the
// client liked — and once closing, Node no longer enforces headersTimeout. Deploy restarts and SIGTERM wait on
// close, so from the moment the server starts closing both kinds are ended: the first at once, the second as soon
// as its answer is out.
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

export function endConnectionsOnClose(app: FastifyInstance): void {
  let closing = false;
  const silent = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    silent.add(socket);
    socket.once('close', () => silent.delete(socket));
  });
  app.server.on('request', (request: { socket: Socket }, response: ServerResponse) => {
    silent.delete(request.socket);
    response.once('finish', () => { if (closing) request.socket.end(); });
  });
  app.addHook('preClose', async () => {
    closing = true;
    for (const socket of silent) socket.destroy();
    silent.clear();
  });
}
