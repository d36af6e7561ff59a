#!/usr/bin/env python3
"""The blog under hostile users and a failing Redis, measured from outside on loopback.

For one bloginfer binary (`bloginfer blog` on SQLite, with a private redis-server on a
free port), prints one JSON object:

- peak RSS of the blog (VmHWM) before and after 40 concurrent registrations;
- the bytes of `GET /api/articles/:slug/comments` with 200 comments of 2,000 characters;
- RSS growth over 200 distinct signed-out listing pages of 100 articles with 1,000-character
  descriptions (the page cache);
- connections still open 15 s after 200 clients each sent half a request (slowloris);
- with Redis killed: the slowest of 20 comment posts and of one login (each client gives
  up after 15 s, counted as 15 s), and how many got a 2xx.

    python3 bench/hostile.py BIN [--label NAME]
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

GIVE_UP = 15.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def call(port, method, path, body=None, token=None, timeout=GIVE_UP):
    """(status, bytes, seconds); status 0 when the client gave up."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    start = time.time()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data, time.time() - start
    except (OSError, http.client.HTTPException):
        return 0, b"", time.time() - start


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def register(port, name):
    status, data, _ = call(port, "POST", "/api/users",
                           {"user": {"username": name, "email": f"{name}@x.test", "password": "password-123"}})
    if status != 201:
        raise SystemExit(f"register {name}: {status} {data[:200]!r}")
    return json.loads(data)["user"]["token"]


def listen_args(binary, port):
    help_text = subprocess.run([binary, "blog", "--help"], capture_output=True, text=True).stdout
    if "--listen" in help_text:
        return ["--listen", f"127.0.0.1:{port}"]
    return ["--host", "127.0.0.1", "--port", str(port)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    work = tempfile.mkdtemp()
    redis_port, port = free_port(), free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    wait_port(redis_port)
    env = dict(os.environ, JWT_SECRET="benchmark-secret-benchmark-secret-00", RUST_LOG="error",
               LOGIN_ATTEMPTS_PER_IP="100000", ACCOUNT_WRITES_PER_IP="100000")
    blog = subprocess.Popen([args.binary, "blog", *listen_args(args.binary, port),
                             "--database-url", f"sqlite:{work}/blog.db",
                             "--redis-url", f"redis://127.0.0.1:{redis_port}/"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = {"label": args.label}
    try:
        wait_port(port)
        token = register(port, "writer")
        result["rss_start_mib"] = rss_kib(blog.pid, "VmRSS") // 1024
        with concurrent.futures.ThreadPoolExecutor(40) as pool:
            list(pool.map(lambda i: register(port, f"burst{i}"), range(40)))
        result["peak_rss_after_40_registrations_mib"] = rss_kib(blog.pid, "VmHWM") // 1024

        status, data, _ = call(port, "POST", "/api/articles",
                               {"article": {"title": "t", "description": "d", "body": "b", "tagList": []}}, token)
        slug = json.loads(data)["article"]["slug"]
        text = "好" * 2000
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: call(port, "POST", f"/api/articles/{slug}/comments",
                                         {"comment": {"body": f"{i} {text}"}}, token), range(200)))
        status, data, _ = call(port, "GET", f"/api/articles/{slug}/comments")
        result["comment_page_bytes"] = len(data)

        description = "长" * 1000
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: call(port, "POST", "/api/articles",
                                         {"article": {"title": f"a{i}", "description": description,
                                                      "body": "b", "tagList": []}}, token), range(300)))
        before = rss_kib(blog.pid, "VmRSS")
        for i in range(200):
            call(port, "GET", f"/api/articles?limit=100&offset={i}")
        result["rss_growth_200_listing_keys_mib"] = (rss_kib(blog.pid, "VmRSS") - before) // 1024

        slow = []
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /api/tags HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        time.sleep(15)
        still_open = 0
        for s in slow:
            s.setblocking(False)
            try:
                still_open += 1 if s.recv(1) != b"" else 0
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
            s.close()
        result["slowloris_open_after_15s"] = still_open

        redis.send_signal(signal.SIGKILL)
        redis.wait()
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            posts = list(pool.map(lambda i: call(port, "POST", f"/api/articles/{slug}/comments",
                                                 {"comment": {"body": f"during the outage {i}"}}, token), range(20)))
        result["redis_down_comment_posts_ok"] = sum(1 for s, _, _ in posts if 200 <= s < 300)
        result["redis_down_slowest_comment_post_s"] = round(max(t for _, _, t in posts), 3)
        status, _, took = call(port, "POST", "/api/users/login",
                               {"user": {"email": "writer@x.test", "password": "password-123"}})
        result["redis_down_login_status"] = status
        result["redis_down_login_s"] = round(took, 3)
    finally:
        blog.kill()
        redis.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
