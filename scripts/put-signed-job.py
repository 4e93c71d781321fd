#!/usr/bin/env python3
"""Put one signed camhd-grid job into beanstalkd, with nothing but Python's standard library.

    scripts/put-signed-job.py HOST:PORT NAMESPACE KEY_FILE VIDEO OUTPUT [STRIDE]

The job is JSON (docs/wire-format.md); the envelope carries its exact text, the id of
the key (the first 8 hex digits of the key's SHA-256), the namespace and kind ("job") it
is put as, and the HMAC-SHA256 of "camhd-grid signed 2\n" + namespace + "\n" + kind +
"\n" + text. Prints the new job's id.
"""
import hashlib
import hmac
import json
import socket
import sys


def seal(key: bytes, namespace: str, kind: str, body: str) -> str:
    kid = hashlib.sha256(key).hexdigest()[:8]
    message = f"camhd-grid signed 2\n{namespace}\n{kind}\n{body}".encode("utf-8")
    mac = hmac.new(key, message, hashlib.sha256).hexdigest()
    return json.dumps({"signed": 2, "kid": kid, "ns": namespace, "kind": kind,
                       "hmac": mac, "body": body})


def main() -> None:
    server, namespace, key_file, video, output = sys.argv[1:6]
    stride = int(sys.argv[6]) if len(sys.argv) > 6 else 10
    with open(key_file, "rb") as f:
        key = f.read()
    job = json.dumps({"version": 1, "video": video, "output": output,
                      "stride": stride, "start": 1, "stop": -1})
    body = seal(key, namespace, "job", job).encode("utf-8")
    host, port = server.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as s:
        replies = s.makefile("rb")
        s.sendall(f"use {namespace}.jobs\r\n".encode())
        assert replies.readline().startswith(b"USING"), "use failed"
        s.sendall(b"put 1024 0 300 %d\r\n%s\r\n" % (len(body), body))
        reply = replies.readline().decode().split()
        assert reply[0] == "INSERTED", reply
        print(reply[1])


if __name__ == "__main__":
    main()
