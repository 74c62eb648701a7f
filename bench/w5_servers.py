"""w5_servers.py: for bench W5 (frame safety): a hostile apimart on 127.0.0.1 (gzip bomb, 4 MB URL, endless body).

usage: python3 bench/w5_servers.py MODE [--bomb-bytes N] [--url-bytes N] [--lifetime S]
  MODE gzipbomb: every status reply is Content-Encoding: gzip and inflates to N bytes (default 64 MiB)
       bigurl:   the task is completed, and its video URL is N bytes long (default 4,000,000)
       endless:  the task is completed, and its video never ends (no Content-Length, sent until the
                 client hangs up)
Prints "w5_servers: listening on http://127.0.0.1:PORT pid PID" first. GET /_stats answers what was
served. Stops when its parent process dies, after --lifetime seconds (default 600), or on SIGTERM.
Loopback only; nothing here reaches the internet. The reply shapes are the sandbox's apimart
(sandbox/apimart.c), which follows ../shared/providers.md section 7.
"""
import gzip
import http.server
import json
import os
import socketserver
import sys
import threading
import time

# an MP4 head: a box whose type, at byte 4, is "ftyp" (what pixflow checks), then nothing but zeros
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
CHUNK = b"\x00" * (1 << 20)


def main():
    args = sys.argv[1:]
    if not args or args[0] not in ("gzipbomb", "bigurl", "endless"):
        sys.stderr.write(__doc__)
        sys.exit(2)
    mode = args[0]
    opts = {"--bomb-bytes": 64 << 20, "--url-bytes": 4_000_000, "--lifetime": 600}
    i = 1
    while i < len(args):
        if args[i] not in opts or i + 1 >= len(args):
            sys.stderr.write(__doc__)
            sys.exit(2)
        opts[args[i]] = int(float(args[i + 1]))
        i += 2
    stats = {"submits": 0, "polls": 0, "downloads": 0, "bytes_sent": 0, "bomb_bytes": 0,
             "bomb_compressed": 0, "url_bytes": 0}
    lock = threading.Lock()
    port_box = {}

    bomb = None
    if mode == "gzipbomb":
        # valid JSON once inflated: a task still running, with a padding member of N bytes
        head = b'{"code":200,"data":{"id":"task_01W5BOMB","status":"processing","progress":50,' \
               b'"created":%d,"estimated_time":30,"padding":"' % int(time.time())
        tail = b'"}}'
        pad = max(0, opts["--bomb-bytes"] - len(head) - len(tail))
        bomb = gzip.compress(head + b"x" * pad + tail, 9)
        stats["bomb_bytes"] = len(head) + pad + len(tail)
        stats["bomb_compressed"] = len(bomb)

    def status_body():
        now = int(time.time())
        base = "http://127.0.0.1:%d/files/" % port_box["port"]
        if mode == "bigurl":
            url = base + "a" * max(1, opts["--url-bytes"] - len(base) - 4) + ".mp4"
            stats["url_bytes"] = len(url)
        else:
            url = base + "endless.mp4"
        return json.dumps({"code": 200, "data": {
            "id": "task_01W5", "status": "completed", "progress": 100, "cost": 0.2,
            "credits_cost": 2, "created": now - 10, "completed": now, "estimated_time": 10,
            "actual_time": 10, "result": {"videos": [{"url": [url], "expires_at": now + 86400}]}}}
        ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, body, ctype="application/json", extra=()):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
            with lock:
                stats["bytes_sent"] += len(body)

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            if self.path.endswith("/v1/videos/generations"):
                with lock:
                    stats["submits"] += 1
                self.reply(200, b'{"code":200,"data":[{"status":"submitted","task_id":"task_01W5"}]}')
            else:
                self.reply(404, b'{"error":{"code":404,"message":"no such route"}}')

        def do_GET(self):
            if self.path == "/_stats":
                with lock:
                    body = json.dumps(stats).encode()
                self.reply(200, body)
            elif "/v1/tasks/" in self.path:
                with lock:
                    stats["polls"] += 1
                if bomb is not None:
                    self.reply(200, bomb, extra=(("Content-Encoding", "gzip"),))
                else:
                    self.reply(200, status_body())
            elif self.path.endswith("/files/endless.mp4"):
                with lock:
                    stats["downloads"] += 1
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    self.wfile.write(MP4_HEAD)
                    while True:
                        self.wfile.write(CHUNK)
                        with lock:
                            stats["bytes_sent"] += len(CHUNK)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
            else:
                self.reply(404, b'{"error":{"code":404,"message":"task not found"}}')

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("127.0.0.1", 0), Handler)
    port_box["port"] = srv.server_address[1]
    parent, started = os.getppid(), time.time()

    def watch():
        # no server outlives the benchmark that started it
        while os.getppid() == parent and time.time() - started < opts["--lifetime"]:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    print("w5_servers: listening on http://127.0.0.1:%d pid %d" % (port_box["port"], os.getpid()), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
