"""Clients that begin a login and walk away, run from a test host (ip netns exec):

    preauth.py pg-abandon HOST PORT USER COUNT
    preauth.py http-hangup HOST PORT USER PASSWORD COUNT AFTER_MS
    preauth.py grpc-cancel HOST PORT USER PASSWORD COUNT AFTER_MS
    preauth.py grpc-call HOST PORT USER PASSWORD
    preauth.py hold HOST PORT COUNT
    preauth.py stall HOST PORT COUNT
    preauth.py pg-discover HOST PORT USER COUNT
    preauth.py pool HOST PORT USER PASSWORD THREADS COUNT SSLMODE
    preauth.py flood HOST PORT COUNT MODE [WINDOW]

pg-abandon opens COUNT pgwire connections for USER and leaves each SCRAM exchange at one of
four stages in turn: a Flush frame instead of the client-final message, a hang-up after
the server-first message, a hang-up right after the client-first message, and a hang-up
after the startup packet. http-hangup sends a Basic login and closes the connection
AFTER_MS later (while the password hash is being checked); grpc-cancel makes a call with
Basic credentials and a deadline of AFTER_MS (the client cancels the stream). Prints
`done N` when every client has finished; only the standard library (and grpcio for
grpc-cancel) is needed. grpc-call makes one such call to the end and prints its status
code's name (`OK`, `RESOURCE_EXHAUSTED`, ...; a failure's details on standard error).
hold opens COUNT connections that send nothing but an SSLRequest (answered, so the server
has taken each), prints `held COUNT`, and keeps them until its standard input closes.
stall does the same with connections that send nothing at all (a TLS handshake never
begun), in order, printing `stalled COUNT`. pg-discover makes COUNT OAUTHBEARER discovery
rounds over TLS, as libpq does when it has no token yet (an empty `auth=`, the server's
error JSON, `0x01`), and prints `discovered N` with N the rounds that ended as PostgreSQL
ends them (SASLContinue, then 28000).

pool logs in COUNT times with psycopg (libpq) from THREADS threads at once, each login
running `SELECT current_user` (which must answer USER) and staying open until every login
has been tried; prints `ok N failed M`, then `first error: ...` when one failed (and the
time taken on standard error).

flood opens COUNT connections one after the other (the open-file limit raised to its hard
limit first), each in MODE: `silent` sends nothing; `ssl` sends a pgwire SSLRequest and
then nothing; `tls-http` and `tls-grpc` make a TLS handshake (ALPN http/1.1, h2; verified
against AUTH_TEST_CA for the name localhost when set) and then send nothing. Each
connection is watched until it is settled:

- `held`: an SSLRequest answered S; a silent connection, or a finished handshake, that
  the server did not close within WINDOW seconds (default 3);
- `refused`: an SSLRequest answered with a FATAL 53300 ErrorResponse; a finished
  handshake that the server then closed within WINDOW (a refused connection hears its
  answer and is closed); a silent connection sent something and closed within WINDOW;
  an ErrorResponse is watched WINDOW seconds more for the close;
- `closed`: closed by the server before any answer (within WINDOW, for a silent one);
- `other`: anything else (see `details`).

When all are settled it prints one JSON line: the counts; `refused_after` [min, max], the
seconds from the first byte sent to the refusal (the ErrorResponse, or the end of the
handshake); `closed_after_refusal`, the longest time from a refusal to the close;
`refused_open`, refused connections the server had not closed WINDOW seconds after the
refusal; `held_after`, the longest time from the first byte to the S or the end of the
handshake of a held one; `closed_after` [min, max], the seconds from the first byte (or
the connection, for a silent one) to the close of a `closed` one; `details`, a few
distinct errors, refusal messages and first bytes received. It then keeps the held
connections and answers each `status` line on standard input with `{"open": N}`, the held
connections the server has not closed, until its standard input closes.
"""

import asyncio
import base64
import json
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
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not ca:
        return grpc.insecure_channel(target)
    with open(ca, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    # The certificate names localhost; the gateway listens on a test host's address.
    options = [("grpc.ssl_target_name_override", "localhost")]
    return grpc.secure_channel(target, credentials, options=options)


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
            print(e.details(), file=sys.stderr)


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


def pool(host, port, user, password, threads, count, sslmode):
    import threading

    import psycopg

    lock = threading.Lock()
    claimed = [0]
    opened, errors = [], []

    def login():
        while True:
            with lock:
                if claimed[0] >= count:
                    return
                claimed[0] += 1
            try:
                conn = psycopg.connect(
                    host=host,
                    port=port,
                    user=user,
                    dbname=user,
                    password=password,
                    sslmode=sslmode,
                    connect_timeout=30,
                    autocommit=True,
                )
                with lock:
                    opened.append(conn)
                who = conn.execute("SELECT current_user").fetchone()[0]
                if who != user:
                    raise RuntimeError(f"SELECT current_user answered {who!r}")
            except Exception as e:  # noqa: BLE001 (every failure is counted and shown)
                with lock:
                    errors.append(f"{type(e).__name__}: {' '.join(str(e).split())}")

    started = time.monotonic()
    workers = [threading.Thread(target=login) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    took = time.monotonic() - started
    print(f"ok {count - len(errors)} failed {len(errors)}")
    if errors:
        print(f"first error: {errors[0]}")
    print(f"pool: {count} logins from {threads} threads in {took:.2f} s", file=sys.stderr)
    for conn in opened:
        conn.close()


SSL_REQUEST = struct.pack("!II", 8, 80877103)


class Watched:
    """One flood connection: when it was connected (or sent its first byte), answered
    (S, an ErrorResponse, a finished handshake) and closed, and what it settled as."""

    __slots__ = ("connected", "answered", "closed", "state", "detail", "writer", "settled")

    def __init__(self):
        self.connected = self.answered = self.closed = None
        self.state, self.detail, self.writer, self.settled = None, "", None, None

    def settle(self, state, detail=""):
        if self.state is None:
            self.state, self.detail = state, detail
            if not self.settled.done():
                self.settled.set_result(None)


def error_fields(body):
    """An ErrorResponse's fields: {'C': '53300', 'M': '...', ...}."""
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


async def read_until_closed(reader, limit):
    """Reads until the server closes, for at most `limit` seconds (None: no limit);
    (closed, the first bytes received). An error reading is a close."""
    received = b""
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            data = await asyncio.wait_for(reader.read(4096), timeout)
        except asyncio.TimeoutError:
            return False, received
        except (OSError, ssl.SSLError, EOFError):
            return True, received
        if not data:
            return True, received
        received = (received + data)[:64]


async def watch(c, reader, mode, window, context):
    if mode == "silent":
        closed, received = await read_until_closed(reader, window)
        if closed:
            c.closed = time.monotonic()
            if received:
                # Answered (a pgwire ErrorResponse, say) and closed.
                c.answered = c.closed
                c.settle("refused", f"a silent connection was sent {received!r}")
            else:
                c.settle("closed")
        elif received:
            c.settle("other", f"a silent connection was sent {received!r} and kept open")
        else:
            c.settle("held")
    elif mode == "ssl":
        try:
            first = await asyncio.wait_for(reader.read(1), 30)
        except OSError:
            first = b""
        except asyncio.TimeoutError:
            c.settle("other", "SSLRequest unanswered for 30 s")
            return
        c.answered = time.monotonic()
        if first == b"S":
            c.settle("held")
        elif first == b"E":
            try:
                (length,) = struct.unpack("!I", await asyncio.wait_for(reader.readexactly(4), 30))
                body = await asyncio.wait_for(reader.readexactly(length - 4), 30)
            except (OSError, EOFError, asyncio.TimeoutError) as e:
                c.settle("other", f"a broken ErrorResponse: {e!r}")
                return
            f = error_fields(body)
            said = f"{f.get('V', f.get('S'))} {f.get('C')} {f.get('M')}"
            if f.get("C") != "53300" or f.get("V", f.get("S")) != "FATAL":
                c.settle("other", f"SSLRequest answered: {said}")
                return
            closed, _ = await read_until_closed(reader, window)
            if closed:
                c.closed = time.monotonic()
            c.settle("refused", said)
        elif first == b"":
            c.answered = None
            c.closed = time.monotonic()
            c.settle("closed")
        else:
            c.answered = None
            c.settle("other", f"SSLRequest answered {first!r}")
    else:
        # The ClientHello leaves now: the server's clock starts after this.
        c.connected = time.monotonic()
        try:
            await asyncio.wait_for(
                c.writer.start_tls(context, server_hostname="localhost", ssl_handshake_timeout=30),
                35,
            )
        except (OSError, ssl.SSLError, EOFError, asyncio.TimeoutError) as e:
            c.closed = time.monotonic()
            c.settle("closed", f"handshake: {type(e).__name__}")
            return
        c.answered = time.monotonic()
        closed, received = await read_until_closed(reader, window)
        if closed:
            c.closed = time.monotonic()
            c.settle("refused", f"received {received!r}")
        else:
            c.settle("held")
    if c.state == "held":
        await read_until_closed(reader, None)
        c.closed = time.monotonic()


async def watched(c, reader, mode, window, context):
    """`watch`, and an unforeseen error settles the connection as `other`."""
    try:
        await watch(c, reader, mode, window, context)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 (shown in the summary's details)
        c.settle("other", f"{type(e).__name__}: {e}")


def raise_open_file_limit():
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def flood_context(mode):
    ca = os.environ.get("AUTH_TEST_CA")
    if ca:
        context = ssl.create_default_context(cafile=ca)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"] if mode == "tls-grpc" else ["http/1.1"])
    return context


def flood_summary(mode, conns):
    def of(state):
        return [c for c in conns if c.state == state]

    def span(values):
        values = [round(v, 3) for v in values]
        return [min(values), max(values)] if values else None

    def longest(values):
        return (span(values) or [None, None])[1]

    refused, held, closed = of("refused"), of("held"), of("closed")
    details = []
    for c in conns:
        if c.detail and c.detail not in details and len(details) < 5:
            details.append(c.detail)
    return {
        "mode": mode,
        "count": len(conns),
        "held": len(held),
        "refused": len(refused),
        "closed": len(closed),
        "other": len(of("other")),
        "refused_after": span([c.answered - c.connected for c in refused]),
        "closed_after_refusal": longest([c.closed - c.answered for c in refused if c.closed]),
        "refused_open": sum(1 for c in refused if c.closed is None),
        "held_after": longest([c.answered - c.connected for c in held if c.answered]),
        "closed_after": span([c.closed - c.connected for c in closed]),
        "details": details,
    }


async def flood(host, port, count, mode, window):
    if mode not in ("silent", "ssl", "tls-http", "tls-grpc"):
        sys.exit(f"preauth.py flood: unknown mode {mode}")
    raise_open_file_limit()
    loop = asyncio.get_running_loop()
    # Connections the server closes mid-handshake are counted, not logged one by one.
    loop.set_exception_handler(lambda _loop, _context: None)
    context = flood_context(mode) if mode.startswith("tls") else None
    conns, tasks = [], []
    for _ in range(count):
        c = Watched()
        c.settled = loop.create_future()
        conns.append(c)
        try:
            reader, c.writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
        except (OSError, asyncio.TimeoutError) as e:
            c.settle("other", f"connect: {type(e).__name__}: {e}")
            continue
        if mode == "ssl":
            c.writer.write(SSL_REQUEST)
        c.connected = time.monotonic()
        tasks.append(asyncio.create_task(watched(c, reader, mode, window, context)))
    await asyncio.gather(*(c.settled for c in conns))
    print(json.dumps(flood_summary(mode, conns)), flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        if line.strip() == "status":
            still = sum(1 for c in conns if c.state == "held" and c.closed is None)
            print(json.dumps({"open": still}), flush=True)
    for c in conns:
        if c.writer is not None:
            c.writer.close()
    for t in tasks:
        t.cancel()


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
    elif what == "pool":
        pool(args[0], int(args[1]), args[2], args[3], int(args[4]), int(args[5]), args[6])
    elif what == "flood":
        window = float(args[4]) if len(args) > 4 else 3.0
        asyncio.run(flood(args[0], int(args[1]), int(args[2]), args[3], window))
    else:
        sys.exit(f"preauth.py: unknown client {what}")


if __name__ == "__main__":
    main(sys.argv)
