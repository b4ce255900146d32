// socket.io 4 room broadcast server for bench/ (WebSocket transport only). Clients join the room
// "room" unless they connect with ?pub=1; a "msg" event from anyone is emitted to the room.
'use strict';
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 9003);
const httpServer = http.createServer();
const io = new Server(httpServer, { transports: ['websocket'], serveClient: false, perMessageDeflate: false, maxHttpBufferSize: 1 << 20 });
io.on('connection', (socket) => {
  if (socket.handshake.query.pub !== '1') socket.join('room');
  socket.on('msg', (m) => io.to('room').emit('msg', m));
});
httpServer.listen(port, '127.0.0.1', () => console.error(`socket.io peer listening on 127.0.0.1:${port}`));
