#!/usr/bin/env python3
"""Load generator and rolling-restart driver of bench/rolling_restart.sh (standard library only).

  rolling_restart.py load        mixed load through the balancer: phase A without restarts, phase B
                                 while RESTART_CMD restarts node 1, then node 2; then every
                                 acknowledged upload is downloaded again and its SHA-256 compared
  rolling_restart.py bruteforce  wrong passwords straight to the nodes: alternating between them,
                                 and to one node only, to compare where the limits bite

Every request opens its own TLS connection (certificate checked against --ca), as the other
benchmarks' curl clients do, so no client-side keep-alive race can count as a server failure.
Settings come from the environment (see main()); figures go to --out as TSV and JSON.
"""

import hashlib
import http.client
import json
import os
import random
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

TIMEOUT = 60


class Client:
    def __init__(self, ca):
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3

    def request(self, method, url, body=None, headers=None, source=None):
        """One request on a connection of its own: (status, headers, body, seconds)."""
        u = urllib.parse.urlsplit(url)
        path = u.path + ("?" + u.query if u.query else "")
        start = time.monotonic()
        conn = http.client.HTTPSConnection(
            u.hostname, u.port, context=self.ctx, timeout=TIMEOUT,
            source_address=(source, 0) if source else None)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            res = conn.getresponse()
            data = res.read()
            return res.status, res, data, time.monotonic() - start
        finally:
            conn.close()


class Recorder:
    """Every request of the load, with its phase (by start time) and outcome."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.phase = "seed"
        self.t0 = time.monotonic()
        self.rows = []
        self.file = open(path, "w", encoding="utf-8")
        self.file.write("t_s\tphase\tkind\tmethod\troute\tstatus\tok\tlatency_ms\terror\n")

    def record(self, phase, kind, method, route, status, ok, seconds, error="", t=None):
        row = (round((t if t is not None else time.monotonic()) - self.t0, 3), phase, kind,
               method, route, status, ok, round(seconds * 1000, 2), error)
        with self.lock:
            self.rows.append(row)
            self.file.write("\t".join(str(v) for v in row) + "\n")

    def close(self):
        self.file.close()


class Load:
    def __init__(self, env):
        self.url = env["RR_URL"].rstrip("/")
        self.client = Client(env["RR_CA"])
        self.auth = {"Authorization": "Bearer " + env["RR_KEY"]}
        self.space = env["RR_SPACE"]
        self.email = env["RR_EMAIL"]
        self.password = env["RR_PASSWORD"]
        self.video = open(env["RR_VIDEO"], "rb").read()
        self.out = env["RR_OUT"]
        self.rec = Recorder(os.path.join(self.out, "rolling_restart.requests.tsv"))
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}  # asset id -> sha256 of what was sent, for every 201
        self.videos_pending = []
        self.videos_ready = []
        self.videos_failed = []
        self.events = []

    # -- one request, recorded ----------------------------------------------------------------
    def call(self, kind, method, route, url, expect, body=None, headers=None):
        phase = self.rec.phase
        t = time.monotonic()
        try:
            status, res, data, secs = self.client.request(method, url, body, headers)
        except Exception as e:  # noqa: BLE001 - every error is a failed request
            self.rec.record(phase, kind, method, route, 0, False, time.monotonic() - t,
                            type(e).__name__ + ": " + str(e)[:120], t)
            return None
        ok = status in expect
        err = "" if ok else data[:160].decode("utf-8", "replace").replace("\t", " ").replace("\n", " ")
        self.rec.record(phase, kind, method, route, status, ok, secs, err, t)
        return (status, res, data) if ok else None

    def fail(self, kind, route, error):
        self.rec.record(self.rec.phase, kind, "-", route, 0, False, 0, error)

    def api(self, path):
        return self.url + path

    # -- the load's kinds -----------------------------------------------------------------------
    def upload_one(self, n):
        data = os.urandom(random.randint(16 << 10, 512 << 10))
        sha = hashlib.sha256(data).hexdigest()
        r = self.call("upload", "POST", "/api/v1/spaces/{id}/assets",
                      self.api(f"/api/v1/spaces/{self.space}/assets?filename=u{n}.bin"), {201},
                      data, dict(self.auth, **{"Content-Type": "application/octet-stream"}))
        if r is None:
            return
        body = json.loads(r[2])
        if body.get("sha256") != sha or body.get("size") != len(data):
            self.fail("upload", "/api/v1/spaces/{id}/assets", "acknowledged other bytes")
            return
        with self.lock:
            self.acked[body["id"]] = sha

    def uploader(self, worker):
        n = 0
        while not self.stop.is_set():
            n += 1
            self.upload_one(f"{worker}-{n}")
            time.sleep(0.2)

    def download_one(self, asset, sha):
        r = self.call("download", "GET", "/api/v1/assets/{id}/content",
                      self.api(f"/api/v1/assets/{asset}/content"), {200}, headers=self.auth)
        if r is not None and hashlib.sha256(r[2]).hexdigest() != sha:
            self.fail("download", "/api/v1/assets/{id}/content", "other bytes than uploaded")

    def downloader(self):
        while not self.stop.is_set():
            with self.lock:
                asset, sha = random.choice(list(self.acked.items()))
            self.download_one(asset, sha)
            time.sleep(0.05)

    def signer(self):
        while not self.stop.is_set():
            r = self.call("login", "POST", "/api/v1/auth/login", self.api("/api/v1/auth/login"),
                          {200}, json.dumps({"email": self.email, "password": self.password}),
                          {"Content-Type": "application/json"})
            if r is not None:
                cookie = r[1].getheader("Set-Cookie", "").split(";", 1)[0]
                # The session, made on one node, works on whichever node the next request meets.
                self.call("session", "GET", "/api/v1/me", self.api("/api/v1/me"), {200},
                          headers={"Cookie": cookie})
            time.sleep(0.5)

    def play(self, asset):
        r = self.call("playback", "POST", "/api/v1/assets/{id}/playback",
                      self.api(f"/api/v1/assets/{asset}/playback"), {201},
                      json.dumps({"expires_in": 600}),
                      dict(self.auth, **{"Content-Type": "application/json"}))
        if r is None:
            return
        master_url = json.loads(r[2])["url"]
        r = self.call("hls", "GET", "/hls/{token}/master.m3u8", master_url, {200})
        if r is None:
            return
        variants = [ln for ln in r[2].decode().splitlines() if ln and not ln.startswith("#")]
        if not variants:
            self.fail("hls", "/hls/{token}/master.m3u8", "no variant in the master playlist")
        for v in variants:
            vurl = urllib.parse.urljoin(master_url, v)
            r = self.call("hls", "GET", "/hls/{token}/{variant}/index.m3u8", vurl, {200})
            if r is None:
                continue
            text = r[2].decode()
            for key in sorted(set(re.findall(r'URI="([^"]+)"', text))):
                self.call("hls", "GET", "/hls/{token}/key", urllib.parse.urljoin(vurl, key), {200})
            segs = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
            if not segs:
                self.fail("hls", "/hls/{token}/{variant}/index.m3u8", "no segment in the playlist")
            for s in segs:
                self.call("hls", "GET", "/hls/{token}/{variant}/{segment}",
                          urllib.parse.urljoin(vurl, s), {200})

    def player(self):
        while not self.stop.is_set():
            with self.lock:
                ready = list(self.videos_ready)
            if ready:
                self.play(random.choice(ready))
            time.sleep(0.5)

    def upload_video(self, n):
        r = self.call("upload", "POST", "/api/v1/spaces/{id}/assets",
                      self.api(f"/api/v1/spaces/{self.space}/assets?filename=clip{n}.mp4"), {201},
                      self.video, dict(self.auth, **{"Content-Type": "video/mp4"}))
        if r is not None:
            body = json.loads(r[2])
            with self.lock:
                self.acked[body["id"]] = hashlib.sha256(self.video).hexdigest()
                self.videos_pending.append(body["id"])

    def poll_videos(self):
        with self.lock:
            pending = list(self.videos_pending)
        for asset in pending:
            r = self.call("metadata", "GET", "/api/v1/assets/{id}",
                          self.api(f"/api/v1/assets/{asset}"), {200}, headers=self.auth)
            if r is None:
                continue
            status = json.loads(r[2]).get("status")
            if status in ("ready", "failed"):
                with self.lock:
                    self.videos_pending.remove(asset)
                    (self.videos_ready if status == "ready" else self.videos_failed).append(asset)

    def video_maker(self, every):
        n, last = 0, 0.0
        while not self.stop.is_set():
            if time.monotonic() - last >= every:
                n += 1
                last = time.monotonic()
                self.upload_video(n)
            self.poll_videos()
            time.sleep(1)

    # -- the run ----------------------------------------------------------------------------------
    def event(self, what):
        t = round(time.monotonic() - self.rec.t0, 3)
        self.events.append({"t_s": t, "event": what})
        print(f"[{t:8.3f}s] {what}", file=sys.stderr, flush=True)

    def run(self, phase_a, restart_cmd, pause, video_every):
        self.event("seeding: 20 uploads and one video, waiting for it to be processed")
        for i in range(20):
            self.upload_one(f"seed-{i}")
        if len(self.acked) < 20:
            raise SystemExit("seeding failed: see the requests file")
        self.upload_video(0)
        deadline = time.monotonic() + 300
        while not self.videos_ready and time.monotonic() < deadline:
            self.poll_videos()
            if self.videos_failed:
                raise SystemExit("the seed video failed to process")
            time.sleep(1)
        if not self.videos_ready:
            raise SystemExit("the seed video was not processed within 300 s")

        threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in [
            (self.uploader, ("a",)), (self.uploader, ("b",)), (self.downloader, ()),
            (self.downloader, ()), (self.signer, ()), (self.player, ()),
            (self.video_maker, (video_every,))]]
        self.rec.phase = "A"
        self.event(f"phase A: steady load, no restart, {phase_a} s")
        for t in threads:
            t.start()
        time.sleep(phase_a)
        self.rec.phase = "B"
        self.event("phase B: the same load during a rolling restart")
        for node in ("1", "2"):
            self.event(f"node {node}: SIGTERM")
            subprocess.run(restart_cmd + [node], check=True)
            self.event(f"node {node}: restarted and ready")
            time.sleep(pause)
        self.event("phase B over")
        self.rec.phase = "after"
        self.stop.set()
        for t in threads:
            t.join()
        self.event("load stopped; waiting for every uploaded video to be processed")
        deadline = time.monotonic() + 300
        while self.videos_pending and time.monotonic() < deadline:
            self.poll_videos()
            time.sleep(1)
        self.event("checking every acknowledged upload")
        self.rec.phase = "check"
        lost = []
        for asset, sha in sorted(self.acked.items()):
            r = self.call("check", "GET", "/api/v1/assets/{id}/content",
                          self.api(f"/api/v1/assets/{asset}/content"), {200}, headers=self.auth)
            if r is None or hashlib.sha256(r[2]).hexdigest() != sha:
                lost.append(asset)
        self.event(f"checked {len(self.acked)} uploads: {len(lost)} lost")
        self.rec.close()
        return self.summary(lost)

    def summary(self, lost):
        rows = self.rec.rows

        def p(values, q):
            if not values:
                return None
            v = sorted(values)
            return v[max(0, min(len(v) - 1, -(-len(v) * q // 100) - 1))]

        out = {"phases": {}, "lost": len(lost), "lost_ids": lost, "acknowledged": len(self.acked),
               "videos": {"ready": len(self.videos_ready), "failed": len(self.videos_failed),
                          "pending": len(self.videos_pending)},
               "events": self.events}
        for phase in ("seed", "A", "B", "after", "check"):
            mine = [r for r in rows if r[1] == phase]
            if not mine:
                continue
            times = [r[0] for r in mine]
            kinds = {}
            for r in mine:
                k = kinds.setdefault(r[2], {"requests": 0, "failed": 0})
                k["requests"] += 1
                k["failed"] += 0 if r[6] else 1
            dl = [r[7] for r in mine if r[2] == "download" and r[6]]
            out["phases"][phase] = {
                "seconds": round(max(times) - min(times), 1), "kinds": kinds,
                "requests": len(mine), "failed": sum(1 for r in mine if not r[6]),
                "download_p50_ms": p(dl, 50), "download_p99_ms": p(dl, 99),
                "download_max_ms": max(dl) if dl else None, "downloads": len(dl),
                "failures": [list(r) for r in mine if not r[6]][:20]}
        a = out["phases"].get("A", {}).get("download_p99_ms")
        b = out["phases"].get("B", {}).get("download_p99_ms")
        out["p99_ratio_b_over_a"] = round(b / a, 3) if a and b else None
        return out


# -- brute force ------------------------------------------------------------------------------
def solve(challenge):
    bits = int(challenge.split(".")[3])
    nonce = 0
    while True:
        h = int.from_bytes(hashlib.sha256(f"{challenge}:{nonce}".encode()).digest(), "big")
        if h >> (256 - bits) == 0:
            return f"{challenge}:{nonce}"
        nonce += 1


def hammer(client, nodes, email, source, log, label):
    """Wrong passwords for `email`, attempt i to nodes[i % len(nodes)], a captcha solved
    whenever one is asked for (and sent to the next node), until a 429. Returns what happened."""
    failures, first_captcha_after, attempt = 0, None, 0
    wrong = "wrong-" + os.urandom(12).hex()
    captcha = None
    while attempt < 200:
        node = nodes[attempt % len(nodes)]
        attempt += 1
        body = {"email": email, "password": wrong}
        if captcha:
            body["captcha"] = captcha
        status, _res, data, secs = client.request(
            "POST", node + "/api/v1/auth/login", json.dumps(body),
            {"Content-Type": "application/json"}, source)
        problem = json.loads(data) if data else {}
        log.write(f"{label}\t{attempt}\t{node}\t{'yes' if captcha else 'no'}\t{status}\t"
                  f"{problem.get('code', '')}\t{failures}\t{round(secs * 1000)}\n")
        captcha = None
        if status == 401:
            failures += 1
        elif status == 428:
            if first_captcha_after is None:
                first_captcha_after = failures
            captcha = solve(problem["challenge"])
        elif status == 429:
            return {"failures_before_429": failures, "captcha_after_failures": first_captcha_after,
                    "attempts": attempt, "nodes": nodes}
        else:
            raise SystemExit(f"{label}: unexpected answer {status}: {data[:200]!r}")
    raise SystemExit(f"{label}: no 429 after {attempt} attempts")


def bruteforce(env):
    client = Client(env["RR_CA"])
    nodes = [env["RR_NODE1"].rstrip("/"), env["RR_NODE2"].rstrip("/")]
    out = env["RR_OUT"]
    with open(os.path.join(out, "rolling_restart.bruteforce.tsv"), "w", encoding="utf-8") as log:
        log.write("run\tattempt\tnode\twith_captcha\tstatus\tcode\tfailures_before\tlatency_ms\n")
        # Each run from a loopback address of its own, so the per-address limit (50) of one run
        # does not count the other's failures (nor the load's sign-ins from 127.0.0.1).
        both = hammer(client, nodes, env["RR_BF_EMAIL_BOTH"], "127.0.0.2", log, "alternating")
        one = hammer(client, nodes[:1], env["RR_BF_EMAIL_ONE"], "127.0.0.3", log, "node1-only")
    return {"alternating": both, "one_node": one}


def main():
    env = os.environ
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "load":
        s = Load(env).run(int(env.get("RR_PHASE_A", "60")), env["RR_RESTART_CMD"].split(),
                          int(env.get("RR_PAUSE", "15")), int(env.get("RR_VIDEO_EVERY", "10")))
        name = "rolling_restart.load.json"
    elif cmd == "bruteforce":
        s = bruteforce(env)
        name = "rolling_restart.bruteforce.json"
    else:
        raise SystemExit("usage: rolling_restart.py load|bruteforce (settings in RR_* variables)")
    with open(os.path.join(env["RR_OUT"], name), "w", encoding="utf-8") as f:
        json.dump(s, f, indent=1)
    print(json.dumps(s))


if __name__ == "__main__":
    main()
