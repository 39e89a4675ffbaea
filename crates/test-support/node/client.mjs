// A test driver around the official socket.io-client (pinned in package.json):
// the Rust tests write commands on stdin and read what happened on stdout, one
// JSON object per line.
//
//   argv[2]: {"url": "http://127.0.0.1:PORT", "auth": {"token": "..."} | null, "transports"?: [...]}
//   stdin:   {"id": 1, "emit": "subscribe", "data": ...}   -> emits with an ack, prints {"type":"ack","id":1,"data":...}
//            {"close": true}                                 -> disconnects and exits
//   stdout:  {"type":"connect"} | {"type":"connect_error","message":...}
//            {"type":"event","event":...,"data":...,"at":<ms since epoch>} | {"type":"disconnect","reason":...}
import { io } from "socket.io-client";
import readline from "node:readline";

const options = JSON.parse(process.argv[2]);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const socket = io(options.url, {
  auth: options.auth ?? undefined,
  transports: options.transports ?? ["polling", "websocket"],
  reconnection: options.reconnection ?? true,
  reconnectionDelay: 100,
  reconnectionDelayMax: 500,
});
socket.on("connect", () => print({ type: "connect", transport: socket.io.engine.transport.name }));
socket.on("connect_error", (error) => print({ type: "connect_error", message: error.message }));
socket.on("disconnect", (reason) => print({ type: "disconnect", reason }));
socket.onAny((event, data) => print({ type: "event", event, data, at: Date.now() }));

const input = readline.createInterface({ input: process.stdin });
input.on("line", async (line) => {
  const command = JSON.parse(line);
  if (command.close) {
    socket.disconnect();
    process.exit(0);
  }
  try {
    const ack = await socket.timeout(5000).emitWithAck(command.emit, command.data);
    print({ type: "ack", id: command.id, data: ack });
  } catch (error) {
    print({ type: "ack", id: command.id, error: String(error) });
  }
});
input.on("close", () => process.exit(0));
