// docs/webhook-receiver.example.mjs — WEBHOOK_SECRET=whsec_… PORT=8099 node docs/webhook-receiver.example.mjs
import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';

const verifier = new Webhook(process.env.WEBHOOK_SECRET);
const seen = new Set(); // webhook-ids already handled (keep them in your database in real life)
createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    let event;
    try {
      event = verifier.verify(body, req.headers); // throws on a bad signature or a stale timestamp
    } catch {
      return res.writeHead(401).end();
    }
    const id = req.headers['webhook-id'];
    if (!seen.has(id)) {
      seen.add(id);
      console.log(event.type, event.data.actor, event.data.approveUrl ?? '');
    }
    res.writeHead(204).end(); // any 2xx: delivered
  });
}).listen(Number(process.env.PORT ?? 8099));
