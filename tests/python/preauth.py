"""Clients that begin a login and walk away, run from a test host (ip netns exec):

    preauth.py pg-abandon HOST PORT USER COUNT
    preauth.py http-hangup HOST PORT USER PASSWORD COUNT AFTER_MS
    preauth.py grpc-cancel HOST PORT USER PASSWORD COUNT AFTER_MS
    preauth.py grpc-call HOST PORT USER PASSWORD
    preauth.py hold HOST PORT COUNT
    preauth.py stall HOST PORT COUNT
    preauth.py pg-discover HOST PORT USER COUNT

pg-abandon opens COUNT pgwire connections for USER and leaves each SCRAM exchange at one of
four stages in turn: a Flush frame instead of the client-final message, a hang-up after
the server-first message, a hang-up right after the client-first message, and a hang-up
after the startup packet. http-hangup sends a Basic login and closes the connection
AFTER_MS later (while the password hash is being checked); grpc-cancel makes a call with
Basic credentials and a deadline of AFTER_MS (the client cancels the stream). Prints
`done N` when every client has finished; only the standard library (and grpcio for
grpc-cancel) is needed. grpc-call makes one such call to the end and prints its status
code's name (`OK`, `RESOURCE_EXHAUSTED`, ...). hold opens COUNT connections that send
nothing but an SSLRequest (answered, so the server has taken each), prints `held COUNT`,
and keeps them until its standard input closes. stall does the same with connections that
send nothing at all (a TLS handshake never begun), in order, printing `stalled COUNT`.
pg-discover makes COUNT OAUTHBEARER discovery rounds over TLS, as libpq does when it has
no token yet (an empty `auth=`, the server's error JSON, `0x01`), and prints `discovered
N` with N the rounds that ended as PostgreSQL ends them (SASLContinue, then 28000).
"""

import base64
import os
import socket
import ssl
import struct
import sys
import time


def read_message(sock):
    head = b""
    while len(head) < 5:
        chunk = sock.recv(5 - len(head))
        if not chunk:
            return None, b""
        head += chunk
    kind, length = head[:1], struct.unpack("!I", head[1:])[0]
    body = b""
    while len(body) < length - 4:
        chunk = sock.recv(length - 4 - len(body))
        if not chunk:
            break
        body += chunk
    return kind, body


def startup(sock, user):
    params = b"user\0" + user.encode() + b"\0database\0" + user.encode() + b"\0\0"
    sock.sendall(struct.pack("!II", 8 + len(params), 196608) + params)


def client_first(sock):
    first = b"n,,n=,r=" + base64.b64encode(os.urandom(18))
    mech = b"SCRAM-SHA-256\0"
    body = mech + struct.pack("!I", len(first)) + first
    sock.sendall(b"p" + struct.pack("!I", 4 + len(body)) + body)


def drain(sock):
    """Reads until the server closes the connection."""
    sock.settimeout(30)
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass


def pg_abandon(host, port, user, count):
    for i in range(count):
        stage = i % 4
        with socket.create_connection((host, port), timeout=30) as sock:
            startup(sock, user)
            kind, _ = read_message(sock)
            if kind != b"R":
                # Refused before the exchange (an address already locked): that is fine.
                continue
            if stage == 3:
                continue
            client_first(sock)
            if stage == 2:
                continue
            kind, body = read_message(sock)
            if kind != b"R":
                continue
            if stage == 0:
                sock.sendall(b"H\0\0\0\4")
                drain(sock)
    print(f"done {count}")


def tls_context():
    """TLS to the gateway's APIs when AUTH_TEST_CA names its certificate."""
    ca = os.environ.get("AUTH_TEST_CA")
    return ssl.create_default_context(cafile=ca) if ca else None


def grpc_channel(grpc, host, port):
    ca = os.environ.get("AUTH_TEST_CA")
    if not ca:
        return grpc.insecure_channel(f"{host}:{port}")
    with open(ca, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    # The certificate names localhost; the gateway listens on a test host's address.
    options = [("grpc.ssl_target_name_override", "localhost")]
    return grpc.secure_channel(f"{host}:{port}", credentials, options=options)


def http_hangup(host, port, user, password, count, after_ms):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = (
        f"GET /whoami HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Basic {token}\r\n\r\n"
    ).encode()
    context = tls_context()
    for _ in range(count):
        with socket.create_connection((host, port), timeout=30) as raw:
            sock = context.wrap_socket(raw, server_hostname="localhost") if context else raw
            sock.sendall(request)
            time.sleep(after_ms / 1000)
    print(f"done {count}")


def grpc_cancel(host, port, user, password, count, after_ms):
    import grpc

    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    with grpc_channel(grpc, host, port) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.unary_unary(
            "/auth.demo.v1.Demo/WhoAmI",
            request_serializer=lambda m: m,
            response_deserializer=lambda m: m,
        )
        for _ in range(count):
            try:
                call(b"", metadata=[("authorization", f"Basic {token}")], timeout=after_ms / 1000)
            except grpc.RpcError:
                pass
    print(f"done {count}")


def grpc_call(host, port, user, password):
    import grpc

    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    with grpc_channel(grpc, host, port) as channel:
        call = channel.unary_unary(
            "/auth.demo.v1.Demo/WhoAmI",
            request_serializer=lambda m: m,
            response_deserializer=lambda m: m,
        )
        try:
            call(b"", metadata=[("authorization", f"Basic {token}")], timeout=30)
            print("OK")
        except grpc.RpcError as e:
            print(e.code().name)


def hold(host, port, count):
    sockets = []
    for _ in range(count):
        s = socket.create_connection((host, port), timeout=30)
        # An SSLRequest answered means the server has taken the connection.
        s.sendall(struct.pack("!II", 8, 80877103))
        s.recv(1)
        sockets.append(s)
    print(f"held {len(sockets)}", flush=True)
    sys.stdin.read()
    for s in sockets:
        s.close()


def stall(host, port, count):
    sockets = [socket.create_connection((host, port), timeout=30) for _ in range(count)]
    print(f"stalled {len(sockets)}", flush=True)
    sys.stdin.read()
    for s in sockets:
        s.close()


def pg_discover(host, port, user, count):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    rounds = 0
    for _ in range(count):
        with socket.create_connection((host, port), timeout=30) as raw:
            raw.sendall(struct.pack("!II", 8, 80877103))
            if raw.recv(1) != b"S":
                continue
            with context.wrap_socket(raw) as sock:
                startup(sock, user)
                kind, body = read_message(sock)
                if kind != b"R" or b"OAUTHBEARER" not in body:
                    continue
                initial = b"n,,\x01auth=\x01\x01"
                mech = b"OAUTHBEARER\0"
                body = mech + struct.pack("!I", len(initial)) + initial
                sock.sendall(b"p" + struct.pack("!I", 4 + len(body)) + body)
                kind, body = read_message(sock)
                if kind != b"R" or struct.unpack("!I", body[:4])[0] != 11:
                    continue
                sock.sendall(b"p" + struct.pack("!I", 5) + b"\x01")
                kind, body = read_message(sock)
                if kind == b"E" and b"C28000\0" in body:
                    rounds += 1
    print(f"discovered {rounds}")


def main(argv):
    what, args = argv[1], argv[2:]
    if what == "pg-abandon":
        pg_abandon(args[0], int(args[1]), args[2], int(args[3]))
    elif what == "http-hangup":
        http_hangup(args[0], int(args[1]), args[2], args[3], int(args[4]), int(args[5]))
    elif what == "grpc-cancel":
        grpc_cancel(args[0], int(args[1]), args[2], args[3], int(args[4]), int(args[5]))
    elif what == "hold":
        hold(args[0], int(args[1]), int(args[2]))
    elif what == "stall":
        stall(args[0], int(args[1]), int(args[2]))
    elif what == "pg-discover":
        pg_discover(args[0], int(args[1]), args[2], int(args[3]))
    elif what == "grpc-call":
        grpc_call(args[0], int(args[1]), args[2], args[3])
    else:
        sys.exit(f"preauth.py: unknown client {what}")


if __name__ == "__main__":
    main(sys.argv)
