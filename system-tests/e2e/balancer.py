"""A TCP load balancer for the end-to-end tests, like a Kubernetes Service: each new connection
goes to the first backend whose admin `/ready` answers 200; bytes are piped both ways.

Run: python3 balancer.py <listen port> <proxy port>:<admin port> [...]
"""
import http.client
import socket
import sys
import threading


def ready(admin):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", admin, timeout=1)
        connection.request("GET", "/ready")
        return connection.getresponse().status == 200
    except OSError:
        return False


def pipe(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((target, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def serve(client, backends):
    for port, admin in backends:
        if ready(admin):
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                continue
            upstream.settimeout(None)
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
            return
    client.close()


def main():
    listen = int(sys.argv[1])
    backends = [tuple(int(part) for part in spec.split(":")) for spec in sys.argv[2:]]
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen))
    server.listen(128)
    while True:
        client, _ = server.accept()
        threading.Thread(target=serve, args=(client, backends), daemon=True).start()


if __name__ == "__main__":
    main()
