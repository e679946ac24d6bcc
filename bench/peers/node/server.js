// The node `ws` peer: echo and one-room fan-out, as ws's README writes a server and a broadcast.
//
// One process, ws's defaults (permessage-deflate is off by default on its servers):
// `node server.js --port PORT`.
"use strict";

const http = require("node:http");
const { WebSocketServer } = require("ws");

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
const rooms = new Map(); // room name: its members

function encode(event) {
  return JSON.stringify(event); // compact, as the other servers send
}

function serveRooms(ws) {
  const joined = new Set();
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    const event = JSON.parse(data.toString());
    const room = event.room ?? "";
    if (event.type === "message" && joined.has(room)) {
      const text = encode({ type: "message", room, text: event.text, ts: Date.now() });
      for (const member of rooms.get(room)) member.send(text);
    } else if (event.type === "join") {
      if (!rooms.has(room)) rooms.set(room, new Set());
      rooms.get(room).add(ws);
      joined.add(room);
      ws.send(encode({ type: "joined", room, members: rooms.get(room).size }));
    } else if (event.type === "ping") {
      ws.send('{"type":"pong"}');
    }
  });
  ws.on("close", () => {
    for (const room of joined) rooms.get(room).delete(ws);
  });
}

function serveEcho(ws) {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
}

const wss = new WebSocketServer({ noServer: true });
const server = http.createServer((request, response) => {
  response.writeHead(426).end();
});
server.on("upgrade", (request, socket, head) => {
  const path = new URL(request.url, "http://localhost").pathname;
  wss.handleUpgrade(request, socket, head, (ws) => {
    ws.on("error", () => ws.terminate()); // benchmark clients drop their connections
    (path === "/ws/echo" ? serveEcho : serveRooms)(ws);
  });
});
server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
