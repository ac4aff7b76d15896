#!/usr/bin/env python3
"""Hostile MQTT clients for the ingest's fault suites (and one well-behaved
truck to measure the others by), on raw sockets so that each misbehaves
exactly as described.  Each mode prints one line of `key=value` results.

  truck HOST PORT USER PASS TOPIC N RATE
      a well-behaved MQTT 3.1.1 truck: N QoS 1 readings at RATE/s, reading
      its PUBACKs; prints acked=, max_ms= (PUBLISH to its PUBACK), lost=
  slow-reader HOST PORT USER PASS TOPIC N
      logs in, then sends up to N QoS 1 readings as fast as it can and never
      reads its socket (receive buffer 4 KiB); prints sent= (PUBLISHes written
      before the server closed), closed=0|1, stalled=1 if the server stopped
      reading it for 30 s without closing it
  silent HOST PORT USER PASS KEEPALIVE WILL_TOPIC WILL_PAYLOAD
      logs in with a will and KEEPALIVE, prints "connected" and then sends
      nothing more (as a client that vanished without FIN); prints
      closed_after_ms= once the server closes it (within 60 s)
  connect-flood HOST PORT N HOLD_S
      opens N sockets as fast as it can, each sending only the first bytes of
      a CONNECT, and holds them HOLD_S seconds; prints opened=, reset=
      (closed by the server within HOLD_S)
  bad-login HOST PORT USER N VERSION
      N CONNECTs of USER with wrong passwords, one after the other; prints
      n=, codes= (CONNACK return/reason codes and their counts), per_s=
"""
import os
import select
import socket
import struct
import sys
import time


def enc_len(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def s16(b):
    return struct.pack(">H", len(b)) + b


def connect_packet(user, pw, keepalive=60, version=4, will=None):
    flags = 0x02  # clean session
    payload = s16(user.encode())
    props = b"\x00" if version == 5 else b""
    if will:
        flags |= 0x04 | 0x08  # will, QoS 1
        payload += (b"\x00" if version == 5 else b"") + s16(will[0].encode()) + s16(will[1].encode())
    if user:
        flags |= 0x80
        payload += s16(user.encode())
    if pw is not None:
        flags |= 0x40
        payload += s16(pw.encode())
    var = s16(b"MQTT") + bytes([version, flags]) + struct.pack(">H", keepalive) + props
    body = var + payload
    return b"\x10" + enc_len(len(body)) + body


def publish_packet(topic, mid, payload):
    body = s16(topic.encode()) + struct.pack(">H", mid) + payload
    return b"\x32" + enc_len(len(body)) + body


def reading(truck, seq):
    ts = int(time.time() * 1000)
    return ('{"v":1,"truck_id":"%s","ts":%d,"seq":%d,"lat":48.1,"lon":11.5,"speed_kmh":50.5,'
            '"ignition":true,"fuel_pct":50,"driver":"x"}' % (truck, ts, seq)).encode()


def recv_exact(s, n, deadline):
    buf = b""
    while len(buf) < n:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_packet(s, deadline):
    h = recv_exact(s, 1, deadline)
    mult, n = 1, 0
    while True:
        b = recv_exact(s, 1, deadline)[0]
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return h[0], recv_exact(s, n, deadline) if n else b""


def login(host, port, user, pw, keepalive=60, will=None, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:  # small buffers both ways: what it has sent is near what the server has read
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    s.connect((host, port))
    s.sendall(connect_packet(user, pw, keepalive, 4, will))
    t, body = read_packet(s, time.monotonic() + 10)
    if t != 0x20 or body[1] != 0:
        raise SystemExit("login refused: %r" % body)
    return s


def truck(host, port, user, pw, topic, n, rate):
    s = login(host, port, user, pw)
    sent_at, acked, max_ms = {}, 0, 0.0
    t0 = time.monotonic()
    for i in range(n):
        mid = i % 65535 + 1
        sent_at[mid] = time.monotonic()
        s.sendall(publish_packet(topic, mid, reading(user, i)))
        # read what came while pacing to RATE
        until = t0 + (i + 1) / rate
        while True:
            left = until - time.monotonic()
            r, _, _ = select.select([s], [], [], max(0, left))
            if not r:
                break
            t, body = read_packet(s, time.monotonic() + 10)
            if t >> 4 == 4:
                m = struct.unpack(">H", body[:2])[0]
                max_ms = max(max_ms, (time.monotonic() - sent_at.pop(m)) * 1000)
                acked += 1
    deadline = time.monotonic() + 20
    while sent_at and time.monotonic() < deadline:
        try:
            t, body = read_packet(s, deadline)
        except (socket.timeout, ConnectionError):
            break
        if t >> 4 == 4:
            m = struct.unpack(">H", body[:2])[0]
            max_ms = max(max_ms, (time.monotonic() - sent_at.pop(m)) * 1000)
            acked += 1
    s.sendall(b"\xe0\x00")
    s.close()
    print("acked=%d max_ms=%.0f lost=%d" % (acked, max_ms, len(sent_at)))


def slow_reader(host, port, user, pw, topic, n):
    s = login(host, port, user, pw, rcvbuf=4096)
    sent, closed, stalled = 0, 0, 0
    s.settimeout(30)
    try:
        for i in range(n):
            s.sendall(publish_packet(topic, i % 65535 + 1, reading(user, i)))
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        closed = 1
    except socket.timeout:  # the server stopped reading it for 30 s, without closing
        stalled = 1
    if not closed and not stalled:  # everything written: is the socket still open?
        time.sleep(2)
        try:
            s.sendall(b"\xc0\x00")  # PINGREQ
            time.sleep(0.5)
            s.sendall(b"\xc0\x00")
        except (BrokenPipeError, ConnectionResetError):
            closed = 1
    print("sent=%d closed=%d stalled=%d" % (sent, closed, stalled))


def silent(host, port, user, pw, keepalive, will_topic, will_payload):
    s = login(host, port, user, pw, keepalive, (will_topic, will_payload))
    print("connected", flush=True)
    t0 = time.monotonic()
    s.settimeout(60)
    try:
        while s.recv(4096):
            pass
    except (socket.timeout, ConnectionError):
        pass
    print("closed_after_ms=%d" % ((time.monotonic() - t0) * 1000))


def connect_flood(host, port, n, hold_s):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    socks, opened = [], 0
    head = connect_packet("flood", "x")[:2]  # a CONNECT's fixed header, its body never comes
    for _ in range(n):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((host, port))
            socks.append(s)
        except OSError:
            break
    end = time.monotonic() + 5
    pending = list(socks)
    while pending and time.monotonic() < end:  # send once each is connected
        _, w, _ = select.select([], pending[:1000], [], 0.2)
        for s in w:
            try:
                s.send(head)
                opened += 1
            except OSError:
                pass
            pending.remove(s)
    time.sleep(hold_s)
    reset = 0
    for s in socks:
        try:
            if s.recv(16) == b"":
                reset += 1
        except BlockingIOError:
            pass
        except OSError:
            reset += 1
        s.close()
    print("opened=%d reset=%d" % (opened, reset))


def bad_login(host, port, user, n, version):
    codes = {}
    t0 = time.monotonic()
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((host, port))
        s.sendall(connect_packet(user, "wrong%d" % i, 60, version))
        try:
            t, body = read_packet(s, time.monotonic() + 10)
            c = "%d" % body[1] if t == 0x20 else "other"
        except (socket.timeout, ConnectionError):
            c = "none"
        codes[c] = codes.get(c, 0) + 1
        s.close()
    dt = time.monotonic() - t0
    print("n=%d codes=%s per_s=%.0f" % (n, ",".join("%s:%d" % kv for kv in sorted(codes.items())), n / dt))


def main(a):
    mode, host, port = a[0], a[1], int(a[2])
    if mode == "truck":
        truck(host, port, a[3], a[4], a[5], int(a[6]), float(a[7]))
    elif mode == "slow-reader":
        slow_reader(host, port, a[3], a[4], a[5], int(a[6]))
    elif mode == "silent":
        silent(host, port, a[3], a[4], int(a[5]), a[6], a[7])
    elif mode == "connect-flood":
        connect_flood(host, port, int(a[3]), float(a[4]))
    elif mode == "bad-login":
        bad_login(host, port, a[3], int(a[4]), int(a[5]))
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(0)
