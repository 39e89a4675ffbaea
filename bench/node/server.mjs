// The seed's stack for comparison (Node 20 + socket.io 4, pinned in
// package.json): a minimal Socket.IO server fed by the same change feed as
// `animoca-trade serve` (Postgres NOTIFY, rows read in version order) and
// broadcasting the same messages to the same rooms. Only what the realtime
// benchmark exercises: subscribe/unsubscribe with acks, trade/price/candle.
//
//   DATABASE_URL=postgres://... PORT=3100 node bench/node/server.mjs
import { createServer } from "node:http";
import { Server } from "socket.io";
import pg from "pg";

const port = Number(process.env.PORT ?? 3100);
const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
await db.connect();
const listener = new pg.Client({ connectionString: process.env.DATABASE_URL });
await listener.connect();

const http = createServer();
const io = new Server(http, { serveClient: false });

io.on("connection", (socket) => {
  socket.on("subscribe", (channels, ack) => {
    const list = Array.isArray(channels) ? channels : [channels];
    for (const channel of list) socket.join(String(channel).toLowerCase());
    if (typeof ack === "function") ack({ success: true, data: { channels: list } });
  });
  socket.on("unsubscribe", (channels, ack) => {
    const list = Array.isArray(channels) ? channels : [channels];
    for (const channel of list) socket.leave(String(channel).toLowerCase());
    if (typeof ack === "function") ack({ success: true, data: { channels: list } });
  });
});

let cursor = Number((await db.query("SELECT version FROM app.change_version")).rows[0].version);
let reading = false;
let again = false;
async function relay() {
  if (reading) {
    again = true;
    return;
  }
  reading = true;
  try {
    do {
      again = false;
      const { rows } = await db.query(
        "SELECT version, kind, payload FROM app.change_feed WHERE version > $1 ORDER BY version, id",
        [cursor],
      );
      // The same messages as ours: trade, price, and one candle event per
      // market and version listing every timeframe.
      let open = null;
      for (const row of rows) {
        cursor = Math.max(cursor, Number(row.version));
        const marketId = row.payload?.market?.market_id;
        if (!marketId || !["trade", "price", "candle"].includes(row.kind)) continue;
        const room = `market:${marketId.toLowerCase()}`;
        const version = Number(row.version);
        if (row.kind === "candle") {
          const { market, ...candle } = row.payload;
          if (open && open.version === version && open.room === room) {
            open.payload.candles.push(candle);
          } else {
            if (open) io.to(open.room).emit("candle", open.payload);
            open = { version, room, payload: { market, candles: [candle], version } };
          }
          continue;
        }
        if (open) {
          io.to(open.room).emit("candle", open.payload);
          open = null;
        }
        io.to(room).emit(row.kind, { ...row.payload, version });
      }
      if (open) io.to(open.room).emit("candle", open.payload);
    } while (again);
  } finally {
    reading = false;
  }
}
listener.on("notification", () => relay().catch((error) => console.error(error)));
await listener.query("LISTEN animoca_changes");
setInterval(() => relay().catch((error) => console.error(error)), 1000);

http.listen(port, "127.0.0.1", () => console.log(`node socket.io listening on ${port}`));
