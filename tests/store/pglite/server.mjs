// PGlite (PostgreSQL WASM) with pgvector behind a TCP socket, for the pgvector store tests.
// Usage: node server.mjs PORT_FILE   (listens on a free 127.0.0.1 port, writes it to PORT_FILE)
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { writeFileSync } from 'node:fs';

const portFile = process.argv[2];
const db = await PGlite.create({ extensions: { vector } });
await db.exec('CREATE EXTENSION IF NOT EXISTS vector');
const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 4 });
server.addEventListener('listening', (e) => {
  const port = e.detail?.port ?? server.server?.address()?.port;
  if (portFile) writeFileSync(portFile, String(port));
  console.log(`pglite listening on 127.0.0.1:${port}`);
});
await server.start();
const stop = async () => { await server.stop(); await db.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
