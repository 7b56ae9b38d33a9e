#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/cavm_ctl.py - send control requests to a cavm control
# socket (docs/control.md) for cavm_devices.sh, one JSON reply per line.
#
#   cavm_ctl.py SOCKET CMD [CMD...]     each CMD a command name, or a
#                                       whole JSON request line ("{...}"),
#                                       or "raw:TEXT" sent as it is
# Prints "CMD <reply>" per request; exits 1 if the socket closes early.
import json
import socket
import sys


def main():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(sys.argv[1])
    buf = b""
    for i, cmd in enumerate(sys.argv[2:]):
        if cmd.startswith("raw:"):
            line = cmd[4:]
        elif cmd.startswith("{"):
            line = cmd
        else:
            line = json.dumps({"v": 1, "id": i + 1, "cmd": cmd})
        s.sendall((line + "\n").encode())
        while b"\n" not in buf:
            d = s.recv(65536)
            if not d:
                print("connection closed", file=sys.stderr)
                return 1
            buf += d
        reply, buf = buf.split(b"\n", 1)
        print(cmd.split(":")[0] if cmd.startswith("raw:") else cmd,
              reply.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
