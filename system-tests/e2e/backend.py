"""Local services for the end-to-end tests: an HTTP backend and a WebSocket echo server."""
import http.server
import socketserver
import sys
import threading
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve


class BodyCutShort(ConnectionError):
    """The request body ended before its framing said it would: the proxy gave up on the request
    (as the tests make it do on purpose, e.g. with a malformed chunk it refuses with 400)."""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        self.trailers = []
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                line = self.rfile.readline()
                if not line:
                    raise BodyCutShort("the chunked body ended early")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                        self.trailers.append(line.decode().strip())
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def reply(self, status, data, extra=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        # Head and body in one write, as servers answer small requests: written apart, a
        # partition cut between the two lets the head reach the client and strands the body
        # (no proxy can retry an answer whose head the client has), which the cluster tests
        # would count against the proxy's retries.
        self.wfile.write(b"".join(self._headers_buffer) + b"\r\n" + data)
        self._headers_buffer = []

    def handle_expect_100(self):
        # `/slow-continue?s=S`: an upstream that takes S seconds to tell the client to go on.
        path, _, query = self.path.partition("?")
        if path == "/slow-continue":
            time.sleep(float(query.split("=")[1]))
        return super().handle_expect_100()

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path.startswith("/bytes/"):
            self.reply(200, b"x" * int(path.split("/")[2]))
        elif path == "/slow":
            time.sleep(float(query.split("=")[1]))
            self.reply(200, b"slow done")
        elif path == "/headers":
            text = "".join(f"{k.lower()}: {v}\n" for k, v in self.headers.items())
            self.reply(200, text.encode())
        else:
            self.reply(200, b"hello from backend")

    def do_POST(self):
        body = self.body()
        if self.path == "/headers-post":
            self.reply(200, "".join(f"{k.lower()}: {v}\n" for k, v in self.headers.items()).encode())
        elif self.path == "/trailers":
            self.reply(200, "".join(f"{line.lower()}\n" for line in self.trailers).encode())
        else:
            self.reply(200, body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A proxy that gives up on a request or a response cuts the connection; that is expected
        # here. Anything else (a malformed chunk size, a bug) is still printed.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, BodyCutShort)):
            super().handle_error(request, client_address)


def echo(websocket):
    try:
        for message in websocket:
            websocket.send(message)
    except ConnectionClosed:
        pass  # the client or the proxy went away mid-conversation: an expected end


if __name__ == "__main__":
    http_port, ws_port = int(sys.argv[1]), int(sys.argv[2])
    server = Server(("127.0.0.1", http_port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with serve(echo, "127.0.0.1", ws_port) as ws:
        ws.serve_forever()
