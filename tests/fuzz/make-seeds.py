#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed inputs of tests/fuzz/corpus/ (run from the top of the tree).

Seeds are well-formed starting points; the fuzzers mutate from them.  The
layouts follow shm/protocol.h and shm/layout.h (docs/protocol.md,
docs/shm-layout.md); regression inputs found by fuzzing sit next to them
under names that say what they caught, and this script never touches those.
"""
import os
import struct

MAGIC = 0x51514D53
OP = dict(HELLO=1, CREATE=2, OPEN=3, CLOSE=4, UNLINK=5, LIST=6, STAT=7, SESSIONS=8,
          STATUS=9, PURGE=10, CONFIG=11, ATTACHMENTS=12)
SEND, RECV, VIEW, SEM, CREATE, USE, END1 = 2, 4, 8, 16, 1, 64, 128


def msg(op, body, seq=1):
    return struct.pack('<IHHIIiI', MAGIC, 1, op, 24 + len(body), seq, 0, 0) + body


def hello(name=b'fuzz'):
    return struct.pack('<HHHH32s', 1, 1, 0, 0, name)


def name64(n):
    return struct.pack('<64s', n)


def req_open(flags, kind, name, geom=b'\0' * 32, mode=0o600):
    return struct.pack('<IHHII64s', flags, kind, 0, mode, 0, name) + geom


def qgeom(slots=8, size=64, mode=0):
    return struct.pack('<IIIIiIQ', slots, size, 0, mode, -1, 0, 0)


def sgeom(initial=1, maxv=0, flags=0):
    return struct.pack('<III20s', initial, maxv, flags, b'')


def script(uids, records):
    out = bytes([uids])
    for ctl, m in records:
        out += struct.pack('<BH', ctl, len(m)) + m
    return out


def segment_queue(n_slots=2, slot_size=16, mode=0, msgs=()):
    stride = (16 + slot_size + 15) & ~15
    sessions_off, object_off = 256, 384
    slots_off = 1024
    size = 4096
    hdr = struct.pack('<QHHHHQQIIIIQQQ', 0x4D474553514D4853, 1, 0, 1, 256, size, 0, 0, 0,
                      0o600, 1, sessions_off, object_off, slots_off)
    hdr += struct.pack('<IIIIiIQ', n_slots, slot_size, stride, mode, -1, 0, 0)
    hdr += struct.pack('<64sQIIQ', b'seed', 1, 1, 0, 0)
    seg = bytearray(size)
    seg[:len(hdr)] = hdr
    for k in range(n_slots):
        struct.pack_into('<QII', seg, slots_off + k * stride, k << 32, 0, 0)
    for k, payload in enumerate(msgs):
        struct.pack_into('<QII', seg, slots_off + k * stride, (k + 1) << 32, len(payload), 0)
        seg[slots_off + k * stride + 16:slots_off + k * stride + 16 + len(payload)] = payload
    # tail and head, for observers and SPSC
    struct.pack_into('<I', seg, object_off, len(msgs))
    return bytes(seg)


def segment_sem(initial=1, maxv=0, flags=0):
    size = 4096
    hdr = struct.pack('<QHHHHQQIIIIQQQ', 0x4D474553514D4853, 1, 0, 2, 256, size, 0, 0, 0,
                      0o600, 1, 256, 384, 0)
    hdr += struct.pack('<III20s', initial, maxv, flags, b'')
    hdr += struct.pack('<64sQIIQ', b'seed', 1, 1, 0, 0)
    seg = bytearray(size)
    seg[:len(hdr)] = hdr
    struct.pack_into('<I', seg, 384, initial)
    return bytes(seg)


def write(target, name, data):
    d = os.path.join('tests/fuzz/corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'seed-' + name), 'wb') as f:
        f.write(data)


F = 4  # ctl: fix up the header
H = (F, msg(OP['HELLO'], hello()))
write('fuzz_proto', 'hello', script(0, [H]))
write('fuzz_proto', 'queue-life', script(0, [
    H,
    (F, msg(OP['CREATE'], req_open(SEND | RECV, 1, b'q', qgeom()))),
    (F, msg(OP['OPEN'], req_open(VIEW, 1, b'q'))),
    (F, msg(OP['LIST'], struct.pack('<II', 0, 0))),
    (F, msg(OP['STAT'], name64(b'q'))),
    (F, msg(OP['ATTACHMENTS'], struct.pack('<64sII', b'q', 0, 0))),
    (F, msg(OP['PURGE'], name64(b'q'))),
    (F, msg(OP['CLOSE'], struct.pack('<Q', 1))),
    (F, msg(OP['UNLINK'], name64(b'q'))),
]))
write('fuzz_proto', 'sem-two-sessions', script(2, [
    H, (F | 1, msg(OP['HELLO'], hello(b'other'))),
    (F, msg(OP['CREATE'], req_open(SEM, 2, b's', sgeom(2, 4, 3), 0o666))),
    (F | 1, msg(OP['OPEN'], req_open(SEM, 2, b's'))),
    (F | 32 | 1, msg(OP['SESSIONS'], struct.pack('<II', 0, 0))),
    (F, msg(OP['STATUS'], b'')),
    (F, msg(OP['CONFIG'], b'')),
]))
write('fuzz_proto', 'open-create-spsc', script(0, [
    H,
    (F, msg(OP['OPEN'], req_open(CREATE | SEND, 1, b'p', qgeom(4, 32, 1)))),
    (F, msg(OP['OPEN'], req_open(RECV, 1, b'p'))),
    (F, msg(OP['OPEN'], req_open(RECV, 1, b'p'))),
    (F | 32, msg(OP['STAT'], name64(b'p'))),
]))
write('fuzz_proto', 'pipe-two-ends', script(0, [
    H,
    (F, msg(OP['CREATE'], req_open(USE, 7, b'p', struct.pack('<II24x', 4, 32)))),
    (F, msg(OP['OPEN'], req_open(USE | END1, 7, b'p'))),
    (F, msg(OP['OPEN'], req_open(USE | END1, 7, b'p'))),
    (F, msg(OP['CLOSE'], struct.pack('<Q', 2))),
    (F, msg(OP['OPEN'], req_open(USE | END1, 7, b'p'))),
    (F | 32, msg(OP['STAT'], name64(b'p'))),
]))
write('fuzz_proto', 'raw-bad-header', script(0, [(0, b'\x53\x4d\x51\x51\x02\x00')]))

write('fuzz_segment', 'queue-mpmc-1msg', segment_queue(msgs=[b'hello']))
write('fuzz_segment', 'queue-spsc', segment_queue(mode=1))
write('fuzz_segment', 'sem', segment_sem())
write('fuzz_segment', 'sem-bounded-undo', segment_sem(1, 2, 3))

# byte 0 object, byte 1 session, then [op][off16][value] records
write('fuzz_segment_mut', 'queue-ops', bytes([0x00, 0]) +
      b''.join(struct.pack('<BHB', 0x80 | (op >> 1), 0, op & 1) for op in range(16)))
write('fuzz_segment_mut', 'queue-scribble-tail', bytes([0x1a, 1]) +
      struct.pack('<BHB', 0x80, 0, 0) + struct.pack('<BHB', 0x00, 1024 + 1, 0x7f) +
      struct.pack('<BHB', 0x80, 0, 1) + struct.pack('<BHB', 0x87, 0, 0))
write('fuzz_segment_mut', 'sem-ops', bytes([0x0b, 0]) +
      b''.join(struct.pack('<BHB', 0x80 | (op >> 1), 0, op & 1) for op in range(8)) +
      struct.pack('<BHB', 0x00, 384 + 3, 0xff) + struct.pack('<BHB', 0x81, 0, 0))

# fuzz_client: byte 0 = two calls (low, high nibble), then reply records
# [ctl][len16][bytes]; ctl 1 fixes the header up, 2 passes a segment memfd,
# 16 makes it a semaphore's.
def reply(body):
    return struct.pack('<IHHIIiI', 0, 0, 0, 0, 0, 0, 0) + body


def crec(ctl, body):
    m = reply(body)
    return struct.pack('<BH', ctl, len(m)) + m


def obj_info(kind=1):
    return (struct.pack('<64sQQQIIIHHIiII', b'f', 1, 4096, 0, 0, 0, 0o600, kind, 0, 1, -1, 0, 0)
            + qgeom(4, 32))


def rep_open(kind=1, flags=SEND | RECV, index=0):
    return struct.pack('<QQQIIHHI', 1, 1, 4096, index, flags, kind, 0, 0)


write('fuzz_client', 'status', bytes([0x00]) + crec(1, struct.pack('<16siIQIIQ108sI', b'1.0.0', 1, 0, 0, 0, 0, 0, b'/s', 0)))
write('fuzz_client', 'config-list', bytes([0x31]) + crec(1, b'max-clients = 1\0')
      + crec(1, struct.pack('<II', 1, 1) + obj_info()))
write('fuzz_client', 'stat-attachments', bytes([0x54]) + crec(1, obj_info())
      + crec(1, struct.pack('<II', 1, 1) + struct.pack('<QQiIII32s', 1, 1, 1, 0, SEND, 0, b'c')))
write('fuzz_client', 'open-queue', bytes([0x08]) + crec(3, rep_open()))
write('fuzz_client', 'open-sem', bytes([0x09]) + crec(3 | 16, rep_open(2, SEM)))
write('fuzz_client', 'view', bytes([0x0a]) + crec(3, rep_open(1, VIEW, 0xffffffff)))
write('fuzz_client', 'stale-then-open', bytes([0xc8]) + crec(1 | 2 | 4, rep_open())
      + crec(3, rep_open()) + crec(1, b''))

# fuzz_proto with a scribbling peer and heartbeat ticks (ctl bits 7 and 6)
write('fuzz_proto', 'scribble-then-open', script(0, [
    H,
    (F | 64, msg(OP['CREATE'], req_open(SEND | RECV, 1, b'q', qgeom(4, 32)))),
    (128, struct.pack('<H', 72) + b'\xff\xff'),
    (F | 64, msg(OP['OPEN'], req_open(RECV, 1, b'q'))),
    (F | 32 | 64, msg(OP['OPEN'], req_open(VIEW, 1, b'q'))),
]))
