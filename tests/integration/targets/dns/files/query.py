"""Ask a DNS server for the A records of a name; print them, one a line.

usage: query.py NAME SERVER  (UDP, one query, 3 s)."""

import random
import socket
import struct
import sys


def main(name, server):
    ident = random.randrange(1 << 16)
    question = b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\0' + struct.pack('!HH', 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(struct.pack('!HHHHHH', ident, 0x0100, 1, 0, 0, 0) + question, (server, 53))
        data, _peer = sock.recvfrom(4096)
    got, flags, _qd, answers = struct.unpack('!HHHH', data[:8])
    if got != ident:
        sys.exit('reply to another query')
    offset = 12 + len(question)
    for _answer in range(answers):
        if data[offset] & 0xc0 == 0xc0:  # a compressed name
            offset += 2
        else:
            while data[offset]:
                offset += data[offset] + 1
            offset += 1
        kind, _cls, _ttl, size = struct.unpack('!HHIH', data[offset:offset + 10])
        offset += 10
        if kind == 1 and size == 4:
            print(socket.inet_ntoa(data[offset:offset + 4]))
        offset += size
    return flags & 0x0f  # the rcode


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2]))
