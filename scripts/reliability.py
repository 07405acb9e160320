"""What scripts/soak and scripts/chaos share: the processes (teacher-sim, distilld, cachectl built
from this repo), an HTTP client for the public API over TCP and the admin API over the Unix socket,
the Banking77 workload and a threaded load generator, process sampling, and SQLite checks.

Python 3 standard library only. Every random choice comes from a random.Random with a seed, so a
run can be repeated (the daemon's own timing still varies)."""

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SOFT_LABELS = os.path.abspath(os.path.join(ROOT, "..", "shared", "data", "banking77", "teacher_soft.jsonl"))
MODEL_DIR = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
MODEL = "gpt-test"


class Failure(Exception):
    """A check that did not hold: the message says what was expected and what was seen."""


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bin_dir(release):
    """The directory of the built executables: $DISTILL_BIN_DIR, else `swift build [-c release] --show-bin-path`."""
    path = os.environ.get("DISTILL_BIN_DIR")
    if not path:
        swift = os.environ.get("SWIFT", "swift")
        args = [swift, "build", "--show-bin-path"] + (["-c", "release"] if release else [])
        path = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    path = os.path.abspath(path)
    for tool in ("distilld", "teacher-sim", "cachectl"):
        if not os.access(os.path.join(path, tool), os.X_OK):
            raise Failure(f"{path}/{tool} is not built: run `swift build{' -c release' if release else ''}` first")
    return path


# MARK: - Processes


class Process:
    """A child process whose stdout and stderr go to files in the work directory."""

    def __init__(self, name, args, work, env=None):
        self.name = name
        self.stdout_path = os.path.join(work, f"{name}.out")
        self.stderr_path = os.path.join(work, f"{name}.err")
        # Appending: a restarted daemon's output follows its predecessor's.
        self.stdout_offset = os.path.getsize(self.stdout_path) if os.path.exists(self.stdout_path) else 0
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.popen = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=work, start_new_session=True)
        self.pid = self.popen.pid

    def wait_for_line(self, pattern, timeout):
        """The first match of `pattern` in what this process printed since it started."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            with open(self.stdout_path, "rb") as f:
                f.seek(self.stdout_offset)
                match = regex.search(f.read().decode("utf-8", "replace"))
            if match:
                return match
            if self.popen.poll() is not None:
                raise Failure(f"{self.name} exited with {self.popen.returncode} before printing /{pattern}/:\n{self.stderr_tail()}")
            time.sleep(0.05)  # polling a file with a deadline
        raise Failure(f"{self.name} did not print /{pattern}/ within {timeout} s:\n{self.stderr_tail()}")

    def alive(self):
        return self.popen.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"{self.name} (pid {self.pid}) did not exit within {timeout} s")

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL if it does not go within `timeout`; the exit status."""
        if not self.alive():
            return self.popen.returncode
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise Failure(f"{self.name} ignored SIGTERM for {timeout} s and was killed")

    def stderr_tail(self, lines=30):
        try:
            with open(self.stderr_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""


def json_exchange(connection, method, path, body=None):
    """One request with a JSON body (if any) on a fresh connection, then closed: (status, decoded JSON)."""
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body), headers={"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


class TeacherSim:
    def __init__(self, bins, work, flags=()):
        self.process = Process("teacher-sim", [os.path.join(bins, "teacher-sim"), "--port", "0", "--soft-jsonl", SOFT_LABELS, *flags], work)
        self.url = self.process.wait_for_line(r"listening on (http://[0-9.]+:[0-9]+)", 60).group(1)
        self.host, self.port = self.url[len("http://"):].split(":")

    def request(self, method, path, body=None):
        return json_exchange(http.client.HTTPConnection(self.host, int(self.port), timeout=10), method, path, body)

    def set_faults(self, **faults):
        """PUT /sim/faults: rates not named are 0."""
        status, body = self.request("PUT", "/sim/faults", faults)
        if status != 200:
            raise Failure(f"PUT /sim/faults {faults}: {status} {body}")


class Daemon:
    """distilld on a data directory, started (and restarted) with the same flags and environment."""

    def __init__(self, bins, work, data_dir, teacher_url, env):
        self.bins, self.work, self.data_dir = bins, work, data_dir
        self.socket = os.path.join(work, "distilld.sock")
        self.db = os.path.join(data_dir, "distill.sqlite")
        self.env = {**os.environ, "DISTILL_EMBEDDING_MODEL_DIR": MODEL_DIR, "DISTILL_LOG_LEVEL": "warning", **env}
        self.args = [os.path.join(bins, "distilld"), "--http", "127.0.0.1:0", "--socket", self.socket,
                     "--data-dir", data_dir, "--teacher-url", teacher_url + "/v1"]
        self.process = None
        self.starts = 0

    def start(self, timeout=180):
        self.process = Process("distilld", self.args, self.work, self.env)
        self.starts += 1
        address = self.process.wait_for_line(r"listening on http://([0-9.]+):([0-9]+)", timeout)
        self.host, self.port = address.group(1), int(address.group(2))
        self.process.wait_for_line(r"listening on unix:", timeout)
        return self

    @property
    def pid(self):
        return self.process.pid

    def admin(self, method, path, body=None, timeout=60):
        """The admin API over the Unix socket: (status, decoded JSON)."""
        return json_exchange(UnixHTTPConnection(self.socket, timeout), method, path, body)

    def cachectl(self, *args, timeout=120):
        result = subprocess.run([os.path.join(self.bins, "cachectl"), "--socket", self.socket, *args],
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise Failure(f"cachectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def sample(self):
        """RSS (KiB; with its anonymous and file-backed parts, to tell the heap from mapped files),
        open descriptors, and the store's size on disk (database, WAL, shared memory)."""
        with open(f"/proc/{self.pid}/status") as f:
            status = {line.split(":")[0]: line.split()[1] for line in f if line.startswith(("VmRSS:", "RssAnon:", "RssFile:"))}
        fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        size = sum(os.path.getsize(self.db + suffix) for suffix in ("", "-wal", "-shm") if os.path.exists(self.db + suffix))
        return {"rss_kib": int(status["VmRSS"]), "rss_anon_kib": int(status["RssAnon"]), "rss_file_kib": int(status["RssFile"]),
                "fds": fds, "sqlite_bytes": size}


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def await_condition(what, condition, timeout, every=0.05):
    """Polls `condition` until it returns something truthy; fails with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


# MARK: - Requests


class Reply:
    def __init__(self, status, headers, body, elapsed, stream):
        self.status, self.headers, self.elapsed, self.stream = status, headers, elapsed, stream
        self.source = headers.get("x-distill-source")
        self.request_id = headers.get("x-request-id")
        self.answer, self.done, self.error_code = None, False, None
        text = body.decode("utf-8", "replace")
        if status == 200 and stream:
            pieces = []
            for line in text.split("\n"):
                if not line.startswith("data: "):
                    continue
                data = line[len("data: "):]
                if data == "[DONE]":
                    self.done = True
                    continue
                event = json.loads(data)
                if event.get("error"):
                    self.error_code = event["error"].get("code")
                for choice in event.get("choices") or []:
                    pieces.append((choice.get("delta") or {}).get("content") or "")
            self.answer = "".join(pieces)
        else:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if status == 200 and isinstance(parsed, dict):
                self.answer = parsed["choices"][0]["message"]["content"]
                self.done = True
            elif isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                self.error_code = parsed["error"].get("code")

    @property
    def ok(self):
        """A 200 that delivered a whole answer (for a stream: up to `[DONE]`, with no error event)."""
        return self.status == 200 and self.done and self.error_code is None

    def describe(self):
        return f"{self.status} source={self.source} code={self.error_code} done={self.done} id={self.request_id}"


class Client:
    """One keep-alive connection to the daemon's TCP listener, reopened after an error."""

    def __init__(self, host, port, timeout=60):
        self.host, self.port, self.timeout = host, port, timeout
        self.connection = None

    def complete(self, query, stream=False, headers=None, request_id=None):
        body = json.dumps({"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": query}]})
        all_headers = {"content-type": "application/json", **(headers or {})}
        if request_id:
            all_headers["x-request-id"] = request_id
        started = time.monotonic()
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.connection.request("POST", "/v1/chat/completions", body=body, headers=all_headers)
            response = self.connection.getresponse()
            data = response.read()
        except Exception:
            self.close()
            raise
        reply_headers = {name.lower(): value for name, value in response.getheaders()}
        if reply_headers.get("connection", "").lower() == "close":
            self.close()
        return Reply(response.status, reply_headers, data, time.monotonic() - started, stream)

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


# MARK: - Workload


def banking77_queries(seed):
    """The distinct Banking77 queries with the soft-label teacher's answers, in a seeded order."""
    seen, queries = set(), []
    with open(SOFT_LABELS, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            # The daemon's exact key folds case and spacing: such duplicates are one query.
            key = " ".join(row["text"].lower().split())
            if key not in seen:
                seen.add(key)
                queries.append((row["text"], row["top"][0][0]))
    random.Random(seed).shuffle(queries)
    return queries


class Workload:
    """Which request to send next. Kinds:
      new      a query never sent before: the student answers it if confident, else the teacher
      repeat   a query the teacher answered before: a cache hit (unless LRU evicted it)
      refresh  a repeat with `x-distill-cache: refresh`: the teacher answers and replaces the entry
    and any of them as a stream. New queries are paced so that the pool lasts the whole run."""

    def __init__(self, queries, mix, stream_share, hot_set=1000):
        self.pool = queries
        self.mix = mix  # [(kind, weight)]
        self.stream_share = stream_share
        self.hot_set = hot_set
        self.lock = threading.Lock()
        self.next_new = 0
        self.answered = []  # queries the teacher answered (cached), oldest first
        self.pacing = None  # (first paced index, how many, start, duration)

    def start_pacing(self, duration):
        """From now on, new queries come out evenly over `duration` seconds, so the pool lasts."""
        with self.lock:
            self.pacing = (self.next_new, len(self.pool) - self.next_new, time.monotonic(), duration)

    def take_new(self):
        with self.lock:
            if self.pacing:
                first, total, start, duration = self.pacing
                share = min(1.0, (time.monotonic() - start) / duration)
                if self.next_new >= first + int(share * total):
                    return None
            if self.next_new >= len(self.pool):
                return None
            query = self.pool[self.next_new]
            self.next_new += 1
            return query

    def pick(self, rng):
        """(kind, (query, expected answer), stream, headers)."""
        kind = rng.choices([k for k, _ in self.mix], [w for _, w in self.mix])[0]
        stream = rng.random() < self.stream_share
        if kind == "new":
            query = self.take_new()
            if query is not None:
                return "new", query, stream, {}
            kind = "repeat"
        with self.lock:
            recent = self.answered[-self.hot_set:]
            query = rng.choice(recent) if recent else None
        if query is None:
            query = self.take_new()
            return ("new", query, stream, {}) if query else (None, None, False, {})
        return kind, query, stream, ({"x-distill-cache": "refresh"} if kind == "refresh" else {})

    def learned(self, query):
        with self.lock:
            self.answered.append(query)


class Tally:
    """Counts of what the load generator sent and got; thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.by_source = {}
        self.by_kind = {}
        self.streams = 0
        self.errors = []  # descriptions of failed requests (the first few are kept)
        self.error_count = 0
        self.latencies = []

    def add(self, kind, reply):
        with self.lock:
            self.requests += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            self.by_source[reply.source] = self.by_source.get(reply.source, 0) + 1
            self.streams += reply.stream
            self.latencies.append(reply.elapsed)

    def error(self, description):
        with self.lock:
            self.error_count += 1
            if len(self.errors) < 20:
                self.errors.append(description)


def teach(daemon, workload, count, threads, seed, tally):
    """Sends `count` new queries concurrently (a quarter as streams); every answer must arrive."""
    def worker(index):
        rng = random.Random(seed * 1000 + index)
        client = Client(daemon.host, daemon.port)
        while True:
            query = workload.take_new()
            if query is None or taken[0] >= count:
                break
            with lock:
                taken[0] += 1
            stream = rng.random() < 0.25
            try:
                reply = client.complete(query[0], stream=stream)
            except Exception as error:
                tally.error(f"teach {query[0]!r}: {type(error).__name__}: {error}")
                continue
            tally.add("new", reply)
            if not reply.ok:
                tally.error(f"teach {query[0]!r}: {reply.describe()}")
            elif reply.source == "teacher":
                workload.learned(query)
        client.close()

    lock, taken = threading.Lock(), [0]
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def await_promotion(daemon, timeout):
    """The first promoted distillation run (the daemon trains on its own schedule)."""
    def promoted():
        status, body = daemon.admin("GET", "/admin/distill")
        runs = body.get("runs", []) if status == 200 else []
        failed = [r for r in runs if r.get("outcome") == "failed"]
        if failed:
            raise Failure(f"a distillation run failed: {failed[0]}")
        return next((r for r in runs if r.get("outcome") == "promoted"), None)
    return await_condition("a distillation run to be promoted", promoted, timeout, every=0.5)


# MARK: - SQLite


def integrity_check(db_path):
    """PRAGMA integrity_check on a copy of the database and its WAL, as a crash left them: the
    daemon's own recovery at restart then starts from the very same files."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "copy.sqlite")
        shutil.copyfile(db_path, copy)
        if os.path.exists(db_path + "-wal"):
            shutil.copyfile(db_path + "-wal", copy + "-wal")
        connection = sqlite3.connect(copy)
        try:
            result = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        finally:
            connection.close()
    return result == ["ok"], result


def query_db(db_path, sql, args=()):
    """A read-only query; safe while the daemon runs (WAL readers do not block its writer)."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


# MARK: - Reporting


def regression_slope(points):
    """Least-squares slope of [(x, y)]; 0 for fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx


def machine():
    """A line naming the machine a figure was measured on."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) // (1024 * 1024)
    return f"{os.cpu_count()} cores ({cpu}), {memory} GiB"
