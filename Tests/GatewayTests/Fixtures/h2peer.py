#!/usr/bin/env python3
"""h2peer: a frame-level HTTP/2 client for the gateway's misbehaving-peer tests.

Each subcommand opens ONE connection to --host:--port (prior-knowledge h2c, or TLS with ALPN h2
and no certificate verification), does one thing to the server, and prints ONE JSON object on
stdout that describes what the server did. The exit status says whether the run itself worked
(0), not whether the server behaved: the Swift tests make the assertions.

  exit 0  the run happened; the JSON object has "ok": true
  exit 1  it could not happen (connect or TLS failure, no ALPN h2, internal error); the JSON
          object has "ok": false and "error"
  exit 2  bad command line (argparse, message on stderr)

Every run is bounded by --timeout seconds (plus a hard alarm a few seconds later). After its
sending phase a run keeps reading until no frame has come for --settle-ms (floods), until the
server closes the connection (drain-watch, zero-window), or until its streams have ended.

Keys every successful run prints: command, ok, target, tls, alpn, elapsed_ms, timed_out,
connection_closed (the server closed it, EOF or reset, before we did), close_kind ("eof",
"reset" or null), closed_at_ms, goaway (the last GOAWAY or null: last_stream_id, error_code,
error_name, debug, at_ms), goaways (all of them), rst_received, frames_received (count per frame
type), server_settings (name -> value), bytes_sent, bytes_received, h2_error (null, or what the
h2 library refused in the server's frames). Times are ms since the run started. "Sent" counts
only what was written to the socket. Per subcommand:

  rapid-reset         streams_requested, streams_sent, responses (response HEADERS frames),
                      barrier_acked (a PING sent after the last stream came back)
  continuation-flood  frames_requested, headers_sent, frames_sent, continuation_block_bytes_sent,
                      responses
  ping-flood          count_requested, pings_sent, acks_received
  settings-flood      count_requested, settings_sent, acks_received (not counting the preface's)
  zero-window         streams_opened, rst_streams [{stream_id, error_code, error_name, at_ms}],
                      responses, data_bytes, seconds_until_close (from the streams being written)
  streams             streams_requested, streams_opened, max_concurrent, completed, statuses
                      {"200": n}, retry_after [values on 503s], response_bytes,
                      request_body_bytes_sent, reset [stream records], not_processed (above the
                      GOAWAY's last_stream_id), echo_ok (null without --expect-echo),
                      echo_mismatches
  drain-watch         streams_opened, pings [{at_ms, data}], streams [{stream_id, status,
                      outcome: complete|reset|open, body_bytes, ended_at_ms, error_*}], timeline
                      [{at_ms, event: opened|goaway|ping|rst_stream|stream_end|closed, ...}]
  slow-upload         body_bytes, body_bytes_sent, status, stream, responses, rst_streams
  conformance         case, first_frame ({type, flags, stream_id} or null), first_bytes (the
                      first 32 bytes received, latin-1: an HTTP/1.1 answer shows here),
                      barrier_acked (a PING sent after the case's last frame came back: the
                      server read it and went on), rst_streams, ended_streams (streams the
                      server ended), statuses {"stream id": status} of the hand-built streams,
                      answered_before_violation (cases that wait for a response first)

zero-window, drain-watch and slow-upload print "h2peer: ready ..." on stderr once their streams
are written, for a test that acts on the server next.

Sending is done with the `h2` package's H2Connection where it can express the frames; what it
cannot (a header block that never ends) is built by hand. Receiving goes through our own frame
splitter first, so GOAWAY, RST_STREAM, PING and SETTINGS are recorded exactly as they arrived
even when H2Connection would reject what follows. GOAWAY frames are recorded but not passed to
H2Connection: h2 closes its state machine on the first GOAWAY and then refuses the DATA and
HEADERS of streams that are still allowed to finish, which is exactly what a graceful drain
sends.
"""

import argparse
import bisect
import json
import select
import signal
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack

FRAME_TYPES = {
    0x0: "DATA",
    0x1: "HEADERS",
    0x2: "PRIORITY",
    0x3: "RST_STREAM",
    0x4: "SETTINGS",
    0x5: "PUSH_PROMISE",
    0x6: "PING",
    0x7: "GOAWAY",
    0x8: "WINDOW_UPDATE",
    0x9: "CONTINUATION",
}
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x9
PRIORITY_FRAME, WINDOW_UPDATE = 0x2, 0x8
FLAG_ACK = 0x1
FLAG_END_STREAM = 0x1
FLAG_END_HEADERS = 0x4
CANCEL = 0x8
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

# Payload of the PING that closes a sending phase: once its ACK is back, the server has read
# everything sent before it.
BARRIER = b"h2peer.B"
# Stop producing frames while this much is still waiting for the socket.
HIGH_WATER = 256 * 1024
READ_CHUNK = 256 * 1024


class RunFailed(Exception):
    """The run could not happen at all (as opposed to: the server did something)."""


class HardTimeout(Exception):
    pass


def error_name(code):
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return "UNKNOWN_0x%x" % code


def setting_name(code):
    try:
        return h2.settings.SettingCodes(code).name
    except ValueError:
        return "0x%x" % code


def hpack_int(value, prefix_bits, first_byte):
    """HPACK integer (RFC 7541 5.1) with `first_byte` holding the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = bytearray([first_byte | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(raw):
    """HPACK string literal without Huffman coding."""
    return hpack_int(len(raw), 7, 0x00) + raw


def hpack_literal_indexed_name(index, value):
    """Literal header field without indexing, name from the static table (RFC 7541 6.2.2)."""
    return hpack_int(index, 4, 0x00) + hpack_string(value)


def hpack_literal_new_name(name, value):
    """Literal header field without indexing, new name (RFC 7541 6.2.2)."""
    return b"\x00" + hpack_string(name) + hpack_string(value)


def frame(frame_type, flags, stream_id, payload):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", frame_type, flags, stream_id & 0x7FFFFFFF) + payload


class Peer:
    """One client connection: a non-blocking socket, an H2Connection for what it can send, and
    our own record of every frame the server sent."""

    def __init__(self, args):
        self.args = args
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.timeout
        self.tls = args.tls
        self.authority = (args.authority or "%s:%d" % (args.host, args.port)).encode()
        self.scheme = b"https" if args.tls else b"http"
        self.alpn = None

        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        # Streams built by hand: their frames never go through H2Connection, in or out.
        self.raw_streams = set()
        # While set, whatever H2Connection wants to send (acks) stays with it: used while a
        # hand-made header block is open, where any other frame would be our protocol error.
        self.hold_h2_output = False
        self.h2_error = None

        self.out = bytearray()
        self.bytes_queued = 0
        self.bytes_written = 0
        self.bytes_received = 0
        self.inbuf = bytearray()
        self.first_bytes = b""
        self.first_frame = None

        self.closed = False
        self.close_kind = None
        self.closed_at_ms = None
        self.last_frame_at = time.monotonic()

        self.frame_counts = {}
        self.server_settings = None
        self.settings_frames = 0
        self.settings_acks = 0
        self.ping_acks = 0
        self.barrier_acked = False
        self.server_pings = []
        self.goaways = []
        self.rsts = []
        self.header_frames = 0
        self.header_streams = set()
        # Streams the server ended (END_STREAM on its HEADERS or DATA), and the :status of the
        # responses on hand-built streams, decoded here since H2Connection never sees them.
        self.ended_streams = set()
        self.raw_statuses = {}
        self.hpack_decoder = hpack.Decoder()
        self.data_bytes = 0
        self.timeline = []
        # (at_ms of the frame, h2 event), for the subcommand to consume.
        self.events = []
        self.statuses = {}

        self.sock = self._connect()

    # -- connection -------------------------------------------------------------------------

    def _connect(self):
        try:
            sock = socket.create_connection((self.args.host, self.args.port), timeout=self.remaining())
        except OSError as e:
            raise RunFailed("connect to %s:%d: %s" % (self.args.host, self.args.port, e))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            host = self.authority.decode().rsplit(":", 1)[0] if self.args.authority else None
            sni = None if host is None or _is_ip(host) else host
            try:
                sock = ctx.wrap_socket(sock, server_hostname=sni)
            except (OSError, ssl.SSLError) as e:
                raise RunFailed("TLS handshake: %s" % e)
            self.alpn = sock.selected_alpn_protocol()
            if self.alpn != "h2":
                raise RunFailed("server did not select h2 via ALPN (selected %r)" % self.alpn)
        sock.setblocking(False)
        return sock

    def now_ms(self):
        return round((time.monotonic() - self.t0) * 1000, 1)

    def remaining(self):
        return max(0.0, self.deadline - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.deadline

    def usable(self):
        """Whether the run can go on sending: open, h2 not broken, time left."""
        return not self.closed and self.h2_error is None and not self.expired()

    def start(self, extra_settings=None):
        """Preface and SETTINGS, then wait for the server's SETTINGS so that its limits
        (concurrent streams, frame size) are known before anything else is sent."""
        self.conn.initiate_connection()
        if extra_settings:
            self.conn.update_settings(extra_settings)
        self.flush_h2()
        self.wait(lambda: self.server_settings is not None)
        return self.server_settings is not None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- sending ----------------------------------------------------------------------------

    def queue(self, data):
        """Queue raw bytes; returns the stream offset at which they end."""
        self.out += data
        self.bytes_queued += len(data)
        return self.bytes_queued

    def flush_h2(self):
        """Move what H2Connection wants to send into the output buffer; returns the end offset."""
        if not self.hold_h2_output:
            data = self.conn.data_to_send()
            if data:
                self.queue(data)
        return self.bytes_queued

    def written_through(self, offset):
        return self.bytes_written >= offset

    # -- I/O --------------------------------------------------------------------------------

    def io(self, timeout):
        """One round of I/O: wait up to `timeout` seconds for the socket, read what is there,
        write what can be written. Reading first, so a GOAWAY that arrived is never lost to a
        failed write."""
        if self.closed:
            return
        timeout = max(0.0, min(timeout, self.remaining()))
        if self.tls and self.sock.pending():
            readable, writable = True, bool(self.out)
        else:
            r, w, _ = select.select([self.sock], [self.sock] if self.out else [], [], timeout)
            readable, writable = bool(r), bool(w)
        if readable:
            self._read()
        if writable and not self.closed:
            self._write()

    def _read(self):
        while not self.closed:
            try:
                data = self.sock.recv(READ_CHUNK)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._mark_closed("eof")
                return
            except (ConnectionResetError, ssl.SSLError, OSError):
                self._mark_closed("reset")
                return
            if not data:
                self._mark_closed("eof")
                return
            if len(self.first_bytes) < 32:
                self.first_bytes += data[: 32 - len(self.first_bytes)]
            self.bytes_received += len(data)
            self.inbuf += data
            self._split_frames()
            if not self.tls:
                return

    def _write(self):
        try:
            n = self.sock.send(memoryview(self.out)[:READ_CHUNK])
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            # Whatever the server sent before it went away may still be readable.
            self._read()
            self._mark_closed("reset")
            return
        del self.out[:n]
        self.bytes_written += n

    def _mark_closed(self, kind):
        if not self.closed:
            self.closed = True
            self.close_kind = kind
            self.closed_at_ms = self.now_ms()
            self.timeline.append({"at_ms": self.closed_at_ms, "event": "closed", "close_kind": kind})

    def wait(self, done, idle_ms=None, limit_s=None):
        """Do I/O until `done()`, the connection closes, time runs out, or (with `idle_ms`) no
        frame has arrived for that long, or (with `limit_s`) that many seconds pass."""
        end = self.deadline if limit_s is None else min(self.deadline, time.monotonic() + limit_s)
        while not self.closed and not done() and time.monotonic() < end:
            if idle_ms is not None and (time.monotonic() - self.last_frame_at) * 1000 >= idle_ms:
                return
            step = min(0.05, max(0.0, end - time.monotonic()))
            self.io(step)

    def drain_output(self):
        """Wait until everything queued is written (or the connection is gone)."""
        self.wait(lambda: not self.out)

    def barrier(self):
        """Send a PING and wait for its ACK: then the server has read all that came before."""
        if not self.usable():
            return False
        self.conn.ping(BARRIER)
        self.flush_h2()
        self.wait(lambda: self.barrier_acked)
        return self.barrier_acked

    # -- receiving --------------------------------------------------------------------------

    def _split_frames(self):
        buf = self.inbuf
        while len(buf) >= 9:
            length = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + length:
                return
            raw = bytes(buf[: 9 + length])
            del buf[: 9 + length]
            self._observe(raw)

    def _observe(self, raw):
        ftype, flags = raw[3], raw[4]
        stream_id = int.from_bytes(raw[5:9], "big") & 0x7FFFFFFF
        payload = raw[9:]
        at = self.now_ms()
        self.last_frame_at = time.monotonic()
        name = FRAME_TYPES.get(ftype, "0x%x" % ftype)
        self.frame_counts[name] = self.frame_counts.get(name, 0) + 1
        if self.first_frame is None:
            self.first_frame = {"type": name, "flags": flags, "stream_id": stream_id}

        if ftype == GOAWAY and len(payload) >= 8:
            last, code = struct.unpack(">II", payload[:8])
            entry = {
                "last_stream_id": last & 0x7FFFFFFF,
                "error_code": code,
                "error_name": error_name(code),
                "debug": payload[8:200].decode("utf-8", "replace"),
                "at_ms": at,
            }
            self.goaways.append(entry)
            self.timeline.append(dict({"at_ms": at, "event": "goaway"}, **entry))
            return  # never to H2Connection: see the module comment
        if ftype == RST_STREAM and len(payload) >= 4:
            (code,) = struct.unpack(">I", payload[:4])
            entry = {"stream_id": stream_id, "error_code": code, "error_name": error_name(code), "at_ms": at}
            self.rsts.append(entry)
            self.timeline.append(dict({"at_ms": at, "event": "rst_stream"}, **entry))
        elif ftype == HEADERS:
            self.header_frames += 1
            self.header_streams.add(stream_id)
            if flags & FLAG_END_STREAM:
                self.ended_streams.add(stream_id)
            if stream_id in self.raw_streams:
                self._decode_raw_headers(stream_id, flags, payload)
        elif ftype == DATA:
            if flags & FLAG_END_STREAM:
                self.ended_streams.add(stream_id)
            self.data_bytes += len(self._data_payload(flags, payload))
        elif ftype == PING:
            if flags & FLAG_ACK:
                self.ping_acks += 1
                if payload == BARRIER:
                    self.barrier_acked = True
            else:
                self.server_pings.append({"at_ms": at, "data": payload.hex()})
                self.timeline.append({"at_ms": at, "event": "ping", "data": payload.hex()})
        elif ftype == SETTINGS:
            if flags & FLAG_ACK:
                self.settings_acks += 1
            else:
                self.settings_frames += 1
                values = {}
                for i in range(0, len(payload) - len(payload) % 6, 6):
                    code, value = struct.unpack(">HI", payload[i : i + 6])
                    values[setting_name(code)] = value
                if self.server_settings is None:
                    self.server_settings = values
                else:
                    self.server_settings.update(values)

        if stream_id in self.raw_streams or self.h2_error is not None:
            return
        try:
            events = self.conn.receive_data(raw)
        except h2.exceptions.H2Error as e:
            # Recorded, and the run stops using H2Connection: its own GOAWAY is not sent, so
            # what the server does next is still the server's doing.
            self.h2_error = "%s: %s" % (type(e).__name__, e)
            return
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers).get(b":status", b"0")
                self.statuses[event.stream_id] = int(status) if status.isdigit() else 0
            elif isinstance(event, h2.events.StreamEnded):
                self.timeline.append(
                    {"at_ms": at, "event": "stream_end", "stream_id": event.stream_id, "status": self.statuses.get(event.stream_id)}
                )
            self.events.append((at, event))
        self.flush_h2()

    def _decode_raw_headers(self, stream_id, flags, payload):
        """The server's header block on a hand-built stream (assumed to fit one frame, as the
        gateway's short responses do); every block goes through the one decoder, in order, so
        its dynamic table stays in step with the server's."""
        block = self._data_payload(flags, payload)
        if flags & FLAG_PRIORITY:
            block = block[5:]
        try:
            fields = self.hpack_decoder.decode(bytes(block), raw=True)
        except Exception as e:  # hpack's errors have no common base worth naming here
            self.h2_error = "hpack: %s" % e
            return
        for name, value in fields:
            if name == b":status" and stream_id not in self.raw_statuses:
                self.raw_statuses[stream_id] = int(value) if value.isdigit() else 0

    @staticmethod
    def _data_payload(flags, payload):
        if flags & FLAG_PADDED and payload:
            pad = payload[0]
            return payload[1 : len(payload) - pad]
        return payload

    def take_events(self):
        events, self.events = self.events, []
        return events

    # -- report -----------------------------------------------------------------------------

    def report(self, command):
        return {
            "command": command,
            "ok": True,
            "target": "%s:%d" % (self.args.host, self.args.port),
            "tls": self.tls,
            "alpn": self.alpn,
            "elapsed_ms": self.now_ms(),
            "timed_out": self.expired(),
            "connection_closed": self.closed,
            "close_kind": self.close_kind,
            "closed_at_ms": self.closed_at_ms,
            "goaway": self.goaways[-1] if self.goaways else None,
            "goaways": self.goaways,
            "rst_received": len(self.rsts),
            "frames_received": self.frame_counts,
            "server_settings": self.server_settings,
            "bytes_sent": self.bytes_written,
            "bytes_received": self.bytes_received,
            "h2_error": self.h2_error,
        }


def _is_ip(host):
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.strip("[]"))
            return True
        except OSError:
            pass
    return False


def request_headers(peer, method=b"GET", path=None, extra=()):
    headers = [
        (b":method", method),
        (b":scheme", peer.scheme),
        (b":authority", peer.authority),
        (b":path", (path or peer.args.path).encode()),
        (b"user-agent", b"h2peer"),
    ]
    headers.extend(extra)
    return headers


def producing_wait(peer, more):
    """How long one I/O round of a flood may wait: not at all while there is more to produce
    and room for it, else until the socket can take or give something."""
    return 0 if more and len(peer.out) < HIGH_WATER else 0.05


def can_open_stream(peer):
    return peer.conn.open_outbound_streams < peer.conn.remote_settings.max_concurrent_streams


# -- subcommands ------------------------------------------------------------------------------


def cmd_rapid_reset(peer, args):
    """HEADERS then RST_STREAM(CANCEL), stream after stream (CVE-2023-44487)."""
    ends = []
    if peer.start():
        headers = request_headers(peer)
        while len(ends) < args.streams and peer.usable():
            while len(ends) < args.streams and len(peer.out) < HIGH_WATER and peer.usable():
                sid = peer.conn.get_next_available_stream_id()
                peer.conn.send_headers(sid, headers, end_stream=True)
                peer.conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
                ends.append(peer.flush_h2())
            peer.io(producing_wait(peer, len(ends) < args.streams))
        peer.drain_output()
        peer.barrier()
        peer.wait(lambda: False, idle_ms=args.settle_ms)
    result = peer.report("rapid-reset")
    result.update(
        streams_requested=args.streams,
        streams_sent=bisect.bisect_right(ends, peer.bytes_written),
        responses=peer.header_frames,
        barrier_acked=peer.barrier_acked,
    )
    return result


def cmd_continuation_flood(peer, args):
    """A HEADERS frame without END_HEADERS, then CONTINUATION frames that never end it."""
    ends = []
    block_bytes = []  # header-block bytes carried by CONTINUATION frames 1..i
    headers_end = None
    if peer.start():
        sid = peer.conn.get_next_available_stream_id()
        peer.raw_streams.add(sid)
        peer.hold_h2_output = True  # nothing may come between the frames of a header block
        block = b"".join(
            [
                hpack_literal_indexed_name(2, b"GET"),  # :method
                hpack_literal_indexed_name(6, peer.scheme.lower()),  # :scheme
                hpack_literal_indexed_name(1, peer.authority),  # :authority
                hpack_literal_indexed_name(4, args.path.encode()),  # :path
            ]
        )
        headers_end = peer.queue(frame(HEADERS, FLAG_END_STREAM, sid, block))
        value = (b"0123456789abcdef" * (args.header_bytes // 16 + 1))[: args.header_bytes]
        while len(ends) < args.frames and peer.usable():
            while len(ends) < args.frames and len(peer.out) < HIGH_WATER:
                field = hpack_literal_new_name(b"x-h2peer-%d" % len(ends), value)
                block_bytes.append((block_bytes[-1] if block_bytes else 0) + len(field))
                ends.append(peer.queue(frame(CONTINUATION, 0, sid, field)))
            peer.io(producing_wait(peer, len(ends) < args.frames))
        peer.drain_output()
        # No PING barrier: a PING inside an open header block is itself a protocol error.
        peer.wait(lambda: False, idle_ms=args.settle_ms)
    sent = bisect.bisect_right(ends, peer.bytes_written)
    result = peer.report("continuation-flood")
    result.update(
        frames_requested=args.frames,
        headers_sent=headers_end is not None and peer.written_through(headers_end),
        frames_sent=sent,
        continuation_block_bytes_sent=block_bytes[sent - 1] if sent else 0,
        responses=peer.header_frames,
    )
    return result


def _flood(peer, args, command, make_frame):
    ends = []
    if peer.start():
        while len(ends) < args.count and peer.usable():
            while len(ends) < args.count and len(peer.out) < HIGH_WATER and peer.usable():
                make_frame(len(ends))
                ends.append(peer.flush_h2())
            peer.io(producing_wait(peer, len(ends) < args.count))
        peer.drain_output()
    return ends


def cmd_ping_flood(peer, args):
    ends = _flood(peer, args, "ping-flood", lambda i: peer.conn.ping(struct.pack(">Q", i)))
    sent = bisect.bisect_right(ends, peer.bytes_written)
    peer.wait(lambda: peer.ping_acks >= sent, idle_ms=args.settle_ms)
    result = peer.report("ping-flood")
    result.update(count_requested=args.count, pings_sent=sent, acks_received=peer.ping_acks)
    return result


def cmd_settings_flood(peer, args):
    ends = _flood(peer, args, "settings-flood", lambda i: peer.conn.update_settings({}))
    sent = bisect.bisect_right(ends, peer.bytes_written)
    # The first ACK answers the SETTINGS of the preface; ACKs come in order.
    flood_acks = lambda: max(0, peer.settings_acks - 1)
    peer.wait(lambda: flood_acks() >= sent, idle_ms=args.settle_ms)
    result = peer.report("settings-flood")
    result.update(count_requested=args.count, settings_sent=sent, acks_received=flood_acks())
    return result


def cmd_zero_window(peer, args):
    """Streams the server may answer but never send a body on: the client's windows stay 0."""
    opened = []
    opened_at = None
    if peer.start(extra_settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}):
        headers = request_headers(peer)
        while len(opened) < args.streams and peer.usable() and not peer.goaways:
            if can_open_stream(peer):
                sid = peer.conn.get_next_available_stream_id()
                peer.conn.send_headers(sid, headers, end_stream=True)
                peer.flush_h2()
                opened.append(sid)
            else:
                peer.io(0.05)
        peer.drain_output()
        opened_at = time.monotonic()
        print("h2peer: ready streams=%d" % len(opened), file=sys.stderr, flush=True)
        all_reset = lambda: args.stop_when_reset and set(opened) <= {r["stream_id"] for r in peer.rsts}
        peer.wait(all_reset)
        peer.take_events()  # never read: no window is ever opened
    result = peer.report("zero-window")
    result.update(
        streams_opened=len(opened),
        rst_streams=[{"stream_id": r["stream_id"], "error_code": r["error_code"], "error_name": r["error_name"], "at_ms": r["at_ms"]} for r in peer.rsts],
        responses=peer.header_frames,
        data_bytes=peer.data_bytes,
        seconds_until_close=(
            round(peer.t0 + peer.closed_at_ms / 1000 - opened_at, 3) if peer.closed and opened_at else None
        ),
    )
    return result


class BodyPattern:
    """A request body that depends on the stream's index, so an echo mixed up between streams
    shows; generated by offset, never held whole."""

    def __init__(self, index):
        self.unit = b"<%d>abcdefghijklmnopqrstuvwxyz0123456789\n" % index

    def slice(self, offset, length):
        unit = self.unit
        start = offset % len(unit)
        reps = (start + length) // len(unit) + 1
        return (unit * reps)[start : start + length]


class StreamRecord:
    def __init__(self, index, stream_id, body_bytes):
        self.index = index
        self.stream_id = stream_id
        self.pattern = BodyPattern(index)
        self.to_send = body_bytes
        self.sent = 0
        self.status = None
        self.headers = {}
        self.received = 0
        self.echo_ok = True
        self.ended = False
        self.reset = None
        self.ended_at_ms = None

    def to_json(self):
        out = {
            "stream_id": self.stream_id,
            "status": self.status,
            "outcome": "complete" if self.ended else ("reset" if self.reset is not None else "open"),
            "body_bytes": self.received,
            "ended_at_ms": self.ended_at_ms,
        }
        if self.reset is not None:
            out["error_code"] = self.reset
            out["error_name"] = error_name(self.reset)
        return out


def _handle_stream_events(peer, by_id, expect_echo):
    for at, event in peer.take_events():
        record = by_id.get(getattr(event, "stream_id", None))
        if isinstance(event, h2.events.DataReceived):
            if event.flow_controlled_length:
                try:
                    peer.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                except h2.exceptions.H2Error:
                    pass
            if record is not None:
                if expect_echo and record.pattern.slice(record.received, len(event.data)) != event.data:
                    record.echo_ok = False
                record.received += len(event.data)
        if record is None:
            continue
        if isinstance(event, h2.events.ResponseReceived):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
            record.status = int(headers.get(":status", "0"))
            record.headers = headers
        elif isinstance(event, h2.events.StreamEnded):
            record.ended = True
            record.ended_at_ms = at
        elif isinstance(event, h2.events.StreamReset):
            record.reset = event.error_code
            record.ended_at_ms = at
    peer.flush_h2()


def _send_bodies(peer, records):
    for record in records:
        if record.sent >= record.to_send or record.ended or record.reset is not None:
            continue
        while record.sent < record.to_send and len(peer.out) < HIGH_WATER:
            try:
                window = peer.conn.local_flow_control_window(record.stream_id)
            except h2.exceptions.H2Error:
                break
            n = min(window, peer.conn.max_outbound_frame_size, record.to_send - record.sent)
            if n <= 0:
                break
            last = record.sent + n == record.to_send
            peer.conn.send_data(record.stream_id, record.pattern.slice(record.sent, n), end_stream=last)
            record.sent += n
    peer.flush_h2()


def _open_streams(peer, records, count, method, body_bytes, path=None):
    extra = [(b"content-length", str(body_bytes).encode())] if body_bytes > 0 else []
    headers = request_headers(peer, method=method.encode(), path=path, extra=extra)
    while len(records) < count and can_open_stream(peer) and not peer.goaways and peer.usable():
        sid = peer.conn.get_next_available_stream_id()
        peer.conn.send_headers(sid, headers, end_stream=body_bytes == 0)
        records.append(StreamRecord(len(records), sid, body_bytes))
    peer.flush_h2()


def cmd_streams(peer, args):
    """A well-behaved client: N streams on one connection, as many at once as the server allows."""
    records = []
    by_id = {}
    max_open = 0
    finished = lambda r: r.ended or r.reset is not None
    if peer.start():
        while peer.usable():
            before = len(records)
            _open_streams(peer, records, args.count, args.method, args.body_bytes)
            for r in records[before:]:
                by_id[r.stream_id] = r
            max_open = max(max_open, peer.conn.open_outbound_streams)
            _send_bodies(peer, records)
            peer.io(0.05)
            _handle_stream_events(peer, by_id, args.expect_echo)
            if peer.goaways or (len(records) == args.count and all(finished(r) for r in records)):
                break
        if peer.goaways:
            # Streams up to last_stream_id may still finish.
            last = peer.goaways[-1]["last_stream_id"]
            pending = lambda: all(finished(r) or r.stream_id > last for r in records)
            while peer.usable() and not pending():
                _send_bodies(peer, records)
                peer.io(0.05)
                _handle_stream_events(peer, by_id, args.expect_echo)
        if peer.usable():
            peer.conn.close_connection()
            peer.flush_h2()
            peer.drain_output()

    statuses = {}
    retry_after = []
    for r in records:
        if r.status is not None:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
            if r.status == 503 and "retry-after" in r.headers:
                retry_after.append(r.headers["retry-after"])
    last_id = peer.goaways[-1]["last_stream_id"] if peer.goaways else None
    result = peer.report("streams")
    result.update(
        streams_requested=args.count,
        streams_opened=len(records),
        max_concurrent=max_open,
        completed=sum(1 for r in records if r.ended),
        statuses=statuses,
        retry_after=retry_after,
        response_bytes=sum(r.received for r in records),
        request_body_bytes_sent=sum(r.sent for r in records),
        reset=[r.to_json() for r in records if r.reset is not None],
        not_processed=sum(1 for r in records if last_id is not None and r.stream_id > last_id and not r.ended),
        echo_ok=(
            all(r.ended and r.echo_ok and r.received == r.to_send for r in records) and len(records) == args.count
            if args.expect_echo
            else None
        ),
        echo_mismatches=sum(1 for r in records if args.expect_echo and r.ended and not (r.echo_ok and r.received == r.to_send)),
    )
    return result


def cmd_drain_watch(peer, args):
    """Open N streams and watch the server drain the connection: GOAWAYs, PINGs, stream ends."""
    records = []
    by_id = {}
    if peer.start():
        while len(records) < args.streams and peer.usable() and not peer.goaways:
            before = len(records)
            _open_streams(peer, records, args.streams, "GET", 0)
            for r in records[before:]:
                by_id[r.stream_id] = r
            if len(records) < args.streams:
                peer.io(0.05)
                _handle_stream_events(peer, by_id, False)
        peer.drain_output()
        print("h2peer: ready streams=%d" % len(records), file=sys.stderr, flush=True)
        at = peer.now_ms()
        peer.timeline.extend({"at_ms": at, "event": "opened", "stream_id": r.stream_id} for r in records)
        # Until the server closes the connection (or time runs out): a drain ends with a close.
        while peer.usable():
            peer.io(0.05)
            _handle_stream_events(peer, by_id, False)
    result = peer.report("drain-watch")
    result.update(
        streams_opened=len(records),
        pings=peer.server_pings,
        streams=[r.to_json() for r in records],
        timeline=peer.timeline,
    )
    return result


def cmd_slow_upload(peer, args):
    """One POST whose body trickles in: --chunk-bytes every --interval-ms, until the body is
    complete, the server answers or resets the stream, or the connection goes."""
    records = []
    body_ends = []  # (output offset, body bytes through that chunk)
    if peer.start():
        _open_streams(peer, records, 1, "POST", args.body_bytes)
    record = records[0] if records else None
    if record is not None:
        by_id = {record.stream_id: record}
        print("h2peer: ready stream=%d" % record.stream_id, file=sys.stderr, flush=True)
        next_at = time.monotonic()
        while peer.usable() and not record.ended and record.reset is None:
            now = time.monotonic()
            if record.sent < record.to_send and now >= next_at:
                try:
                    window = min(peer.conn.local_flow_control_window(record.stream_id), peer.conn.max_outbound_frame_size)
                except h2.exceptions.H2Error:
                    break  # the stream is closed on our side
                n = min(args.chunk_bytes, record.to_send - record.sent, window)
                if n > 0:
                    last = record.sent + n == record.to_send
                    peer.conn.send_data(record.stream_id, record.pattern.slice(record.sent, n), end_stream=last)
                    record.sent += n
                    body_ends.append((peer.flush_h2(), record.sent))
                    next_at = now + args.interval_ms / 1000
            wait = 0.05 if record.sent >= record.to_send else max(0.0, min(0.05, next_at - now))
            peer.io(wait)
            _handle_stream_events(peer, by_id, False)
        if record.ended and record.sent < record.to_send:
            # Answered before the body was all sent: a server that wants no more of it says so
            # with RST_STREAM (RFC 9113 8.1), which may come in a later read than the response.
            peer.wait(lambda: any(r["stream_id"] == record.stream_id for r in peer.rsts), limit_s=2)
    written = [body for end, body in body_ends if peer.written_through(end)]
    result = peer.report("slow-upload")
    result.update(
        body_bytes=args.body_bytes,
        body_bytes_sent=written[-1] if written else 0,
        status=record.status if record else None,
        stream=record.to_json() if record else None,
        responses=peer.header_frames,
        rst_streams=peer.rsts,
    )
    return result


# -- conformance: h2spec's cases, frame by frame ------------------------------------------------

MAGIC = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _request_block(peer, method=b"GET", path=None, extra=()):
    """A request header block of literals without indexing: it leaves no dynamic-table state,
    so the same block can be sent twice, and a block the server drops unread changes nothing."""
    block = b"".join(
        [
            hpack_literal_indexed_name(2, method),  # :method
            hpack_literal_indexed_name(6, peer.scheme),  # :scheme
            hpack_literal_indexed_name(1, peer.authority),  # :authority
            hpack_literal_indexed_name(4, (path or peer.args.path).encode()),  # :path
        ]
    )
    return block + b"".join(hpack_literal_new_name(name, value) for name, value in extra)


def _headers(peer, sid, end_stream=True, **request):
    peer.raw_streams.add(sid)
    flags = FLAG_END_HEADERS | (FLAG_END_STREAM if end_stream else 0)
    return peer.queue(frame(HEADERS, flags, sid, _request_block(peer, **request)))


def _data(peer, sid, payload=b"test", end_stream=True):
    peer.raw_streams.add(sid)
    return peer.queue(frame(DATA, FLAG_END_STREAM if end_stream else 0, sid, payload))


def _continuation(peer, sid):
    peer.raw_streams.add(sid)
    return peer.queue(frame(CONTINUATION, FLAG_END_HEADERS, sid, hpack_literal_new_name(b"x-dummy0", b"dummy")))


def _rst(peer, sid, code=CANCEL):
    peer.raw_streams.add(sid)
    return peer.queue(frame(RST_STREAM, 0, sid, struct.pack(">I", code)))


def _answered(peer, sid):
    """Waits until the server ended its response on `sid` (or reset it); h2spec's
    VerifyStreamClose. Returns whether the response ended."""
    peer.drain_output()
    peer.wait(lambda: sid in peer.ended_streams or any(r["stream_id"] == sid for r in peer.rsts))
    return sid in peer.ended_streams


# Each case sends what h2spec's test of the same name sends (section in the comment) and
# returns extra report keys; the violating frame is the last thing it queues.
def _case_closed(violation):
    """5.1 closed: the stream is answered (END_STREAM both ways), then the violation."""

    def run(peer):
        _headers(peer, 1)
        answered = _answered(peer, 1)
        violation(peer, 1)
        return {"answered_before_violation": answered}

    return run


def _case_after_reset(violation):
    """5.1 closed: HEADERS, RST_STREAM(CANCEL) from us, then the violation, in one write."""

    def run(peer):
        _headers(peer, 1, end_stream=False)
        _rst(peer, 1)
        violation(peer, 1)
        return {}

    return run


def _case_half_closed(violation):
    """5.1 half-closed (remote): HEADERS with END_STREAM, then the violation, in one write."""

    def run(peer):
        _headers(peer, 1)
        violation(peer, 1)
        return {}

    return run


def _case_idle(violation):
    """5.1 idle: the violation on stream 1, never opened."""

    def run(peer):
        violation(peer, 1)
        return {}

    return run


def _window_update(peer, sid):
    peer.raw_streams.add(sid)
    peer.queue(frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", 100)))


def _continuation_with_request(peer, sid):
    peer.raw_streams.add(sid)
    peer.queue(frame(CONTINUATION, FLAG_END_HEADERS, sid, _request_block(peer)))


def _case_stream_ids(*ids):
    """5.1.1: HEADERS with END_STREAM on these stream ids, in one write."""

    def run(peer):
        for sid in ids:
            _headers(peer, sid)
        return {}

    return run


def _case_after_gateway_reset(peer):
    """Not h2spec: DATA still in flight on a stream the *server* reset must be ignored (RFC
    9113 5.1, closed). The server answers 413 at the HEADERS (a declared body over the limit)
    and resets the stream; DATA follows, then a new stream must still be served."""
    _headers(peer, 1, end_stream=False, method=b"POST", path="/echo", extra=[(b"content-length", b"200000")])
    answered = _answered(peer, 1)
    peer.wait(lambda: any(r["stream_id"] == 1 for r in peer.rsts), limit_s=2)
    _data(peer, 1, b"x" * 1000, end_stream=False)
    _headers(peer, 3)
    _answered(peer, 3)
    return {"answered_before_violation": answered}


def _case_trailers(peer):
    """Not h2spec: a request with a body and trailers (HEADERS, DATA, HEADERS END_STREAM) is
    legitimate and must be answered."""
    _headers(peer, 1, end_stream=False, method=b"POST", path="/echo")
    _data(peer, 1, b"hello", end_stream=False)
    peer.queue(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 1, hpack_literal_new_name(b"x-trailer", b"1")))
    _answered(peer, 1)
    return {}


def _case_skipped_stream_id(peer):
    """Not h2spec: skipping an id (1, then 5) is allowed; both are answered."""
    _headers(peer, 1)
    _headers(peer, 5)
    _answered(peer, 1)
    _answered(peer, 5)
    return {}


CONFORMANCE_CASES = {
    # 5.1 idle
    "idle-data": _case_idle(lambda peer, sid: _data(peer, sid)),
    "idle-rst-stream": _case_idle(lambda peer, sid: _rst(peer, sid)),
    "idle-window-update": _case_idle(_window_update),
    "idle-continuation": _case_idle(_continuation_with_request),
    # 5.1 half-closed (remote)
    "half-closed-data": _case_half_closed(lambda peer, sid: _data(peer, sid)),
    "half-closed-headers": _case_half_closed(lambda peer, sid: _headers(peer, sid)),
    "half-closed-continuation": _case_half_closed(_continuation),
    # 5.1 closed, after our RST_STREAM
    "reset-data": _case_after_reset(lambda peer, sid: _data(peer, sid)),
    "reset-headers": _case_after_reset(lambda peer, sid: _headers(peer, sid)),
    "reset-continuation": _case_after_reset(_continuation),
    # 5.1 closed, after END_STREAM both ways
    "closed-data": _case_closed(lambda peer, sid: _data(peer, sid)),
    "closed-headers": _case_closed(lambda peer, sid: _headers(peer, sid)),
    "closed-continuation": _case_closed(_continuation),
    # 5.1.1
    "even-stream-id": _case_stream_ids(2),
    "smaller-stream-id": _case_stream_ids(5, 3),
    # legitimate traffic next to the rules above
    "after-gateway-reset-data": _case_after_gateway_reset,
    "trailers": _case_trailers,
    "skipped-stream-id": _case_skipped_stream_id,
}

# 3.5: what is sent instead of the client preface.
PREFACE_CASES = {
    "preface-valid": MAGIC + frame(SETTINGS, 0, 0, struct.pack(">HI", 0x4, 65535)),
    "preface-invalid": b"INVALID CONNECTION PREFACE\r\n\r\n",
    "preface-bad-magic": b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
    "preface-no-settings": MAGIC + frame(PING, 0, 0, b"\0" * 8),
}


def cmd_conformance(peer, args):
    """One h2spec-style case: the frames it names, then what the server did about them. After
    the violating frame a PING follows; its ACK means the server read the frame and went on."""
    extra = {}
    if args.case in PREFACE_CASES:
        peer.queue(PREFACE_CASES[args.case])
        peer.drain_output()
        if args.case == "preface-valid":
            peer.wait(lambda: peer.first_frame is not None)
        else:
            peer.wait(lambda: False)  # until the server closes, or the run times out
    elif peer.start():
        extra = CONFORMANCE_CASES[args.case](peer)
        peer.drain_output()
        if peer.usable():
            peer.conn.ping(BARRIER)
            peer.flush_h2()
            peer.wait(lambda: peer.barrier_acked or peer.goaways)
        if peer.goaways:
            peer.wait(lambda: False, limit_s=3)  # a connection error ends with a close
        else:
            peer.wait(lambda: False, idle_ms=args.settle_ms)
    result = peer.report("conformance")
    result.update(
        case=args.case,
        first_frame=peer.first_frame,
        first_bytes=peer.first_bytes.decode("latin-1"),
        barrier_acked=peer.barrier_acked,
        rst_streams=peer.rsts,
        ended_streams=sorted(peer.ended_streams),
        statuses={str(sid): status for sid, status in sorted(peer.raw_statuses.items())},
        **extra,
    )
    return result


COMMANDS = {
    "rapid-reset": cmd_rapid_reset,
    "continuation-flood": cmd_continuation_flood,
    "ping-flood": cmd_ping_flood,
    "settings-flood": cmd_settings_flood,
    "zero-window": cmd_zero_window,
    "streams": cmd_streams,
    "drain-watch": cmd_drain_watch,
    "slow-upload": cmd_slow_upload,
    "conformance": cmd_conformance,
}


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %d" % value)
    return value


def non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative, got %d" % value)
    return value


def parse_args(argv):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="127.0.0.1")
    common.add_argument("--port", type=int, required=True)
    common.add_argument("--tls", action="store_true", help="TLS with ALPN h2, certificate not verified")
    common.add_argument("--authority", help=":authority (and SNI with --tls); default HOST:PORT")
    common.add_argument("--path", default="/")
    common.add_argument("--timeout", type=float, default=10.0, help="bound on the whole run, seconds")
    common.add_argument(
        "--settle-ms",
        type=non_negative,
        default=500,
        help="after sending, keep reading until no frame has come for this long",
    )

    parser = argparse.ArgumentParser(prog="h2peer.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("rapid-reset", parents=[common], help="HEADERS + RST_STREAM(CANCEL) per stream")
    p.add_argument("--streams", type=positive, required=True)
    p = sub.add_parser("continuation-flood", parents=[common], help="a header block that never ends")
    p.add_argument("--frames", type=positive, required=True)
    p.add_argument("--header-bytes", type=positive, default=100, help="value length of each CONTINUATION's header")
    p = sub.add_parser("ping-flood", parents=[common], help="N PINGs while reading the ACKs")
    p.add_argument("--count", type=positive, required=True)
    p = sub.add_parser("settings-flood", parents=[common], help="N empty SETTINGS while reading the ACKs")
    p.add_argument("--count", type=positive, required=True)
    p = sub.add_parser("zero-window", parents=[common], help="K streams with a window that never opens")
    p.add_argument("--streams", type=positive, required=True)
    p.add_argument("--stop-when-reset", action="store_true", help="end once the server has reset every stream")
    p = sub.add_parser("streams", parents=[common], help="N concurrent well-behaved requests")
    p.add_argument("--count", type=positive, required=True)
    p.add_argument("--method", default="GET", help="any method token (TRACE with a body, say)")
    p.add_argument("--body-bytes", type=non_negative, default=0)
    p.add_argument("--expect-echo", action="store_true", help="check each response body equals its request body")
    p = sub.add_parser("drain-watch", parents=[common], help="N streams, then record the server's drain")
    p.add_argument("--streams", type=positive, required=True)
    p = sub.add_parser("slow-upload", parents=[common], help="one POST whose body trickles in")
    p.add_argument("--body-bytes", type=positive, required=True)
    p.add_argument("--chunk-bytes", type=positive, default=1, help="bytes per DATA frame")
    p.add_argument("--interval-ms", type=non_negative, default=1000, help="pause between DATA frames")
    p = sub.add_parser("conformance", parents=[common], help="one h2spec-style case, frame by frame")
    p.add_argument("--case", required=True, choices=sorted(list(CONFORMANCE_CASES) + list(PREFACE_CASES)))

    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    if not 0 < args.port < 65536:
        parser.error("--port must be from 1 to 65535")
    return args


def main(argv):
    args = parse_args(argv)

    def on_alarm(signum, frame):
        raise HardTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout) + 5)
    peer = None
    try:
        peer = Peer(args)
        result = COMMANDS[args.command](peer, args)
        code = 0
    except RunFailed as e:
        result, code = {"command": args.command, "ok": False, "error": str(e)}, 1
    except HardTimeout:
        result, code = {"command": args.command, "ok": False, "error": "hard timeout: the run did not end"}, 1
    except Exception as e:  # a bug here must still produce one JSON object
        result, code = {"command": args.command, "ok": False, "error": "%s: %s" % (type(e).__name__, e)}, 1
    finally:
        signal.alarm(0)
        if peer is not None:
            peer.close()
    print(json.dumps(result), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
