#!/usr/bin/env python3
"""Issue 18's check, end to end: a fresh distilld learns from the teacher's answers to N train rows (in file
order, i.e. a few intents, or shuffled), trains (`cachectl distill run --wait`), then is asked M test rows one at a
time. Reports what the student served and its agreement with the teacher, and the cache's.

    scripts/drift-check.py                      # 3,000 rows in file order, then 1,000 random test rows
    scripts/drift-check.py --order shuffled     # the same with the train rows shuffled
    scripts/drift-check.py --test first         # the first 1,000 test rows instead (mostly the learned intents)
    scripts/drift-check.py --show-wrong         # and each answer the student got wrong, as it comes
    scripts/drift-check.py --daemon-env DISTILL_CACHE_ENABLED=false   # the student alone, no cache before it
    scripts/drift-check.py --dump asks.jsonl    # and every asked row's outcome, one JSON object a line
    scripts/drift-check.py --learn-through-teacher   # every learned row to the teacher (x-distill-cache: refresh)
    scripts/drift-check.py --asks-without-cache      # distilld restarted with the cache off for the asks

The daemon runs on its defaults (every DISTILL_ variable of the caller is dropped; --daemon-env sets some), from --bin
(a release build).
"""
import argparse, collections, concurrent.futures, json, os, random, re, subprocess, sys, tempfile, threading, urllib.request

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--bin", default=os.path.join(root, ".build/release"), help="directory of distilld, teacher-sim, cachectl")
parser.add_argument("--data", default=os.path.join(root, "../shared/data/banking77/teacher_soft.jsonl"))
parser.add_argument("--model", default=os.path.join(root, "models/all-MiniLM-L6-v2"))
parser.add_argument("--order", choices=["file", "shuffled"], default="file")
parser.add_argument("--test", choices=["random", "first"], default="random")
parser.add_argument("--train", type=int, default=3000)
parser.add_argument("--asks", type=int, default=1000)
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--daemon-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra variable for distilld's environment (repeatable)")
parser.add_argument("--show-wrong", action="store_true",
                    help="print each answer the student got wrong: the request, its answer, the teacher's, and how often the teacher gave that answer in the rows learned")
parser.add_argument("--dump", metavar="FILE",
                    help="write each asked row's outcome (text, source, answer, the teacher's, x-distill-similarity and -confidence) to FILE as JSON lines")
parser.add_argument("--learn-through-teacher", action="store_true",
                    help="send the learned rows with x-distill-cache: refresh, so that neither the cache nor a student answers them and the teacher log holds them all")
parser.add_argument("--asks-without-cache", action="store_true",
                    help="after training, restart distilld on the same store with the cache off, so that the student decides on every asked row")
args = parser.parse_args()

rows = [json.loads(line) for line in open(args.data)]
# teacher_soft.jsonl: Banking77's train rows (grouped by intent), then its 3,080 test rows.
train, test = rows[:-3080], rows[-3080:]
generator = random.Random(args.seed)
if args.order == "shuffled":
    generator.shuffle(train)
learn = train[: args.train]
asks = generator.sample(test, args.asks) if args.test == "random" else test[: args.asks]
learned = {row["text"] for row in learn}
taught = collections.Counter(row["top"][0][0] for row in learn)
asks = [row for row in asks if row["text"] not in learned]

directory = tempfile.mkdtemp(prefix="distill-drift-")
environment = {key: value for key, value in os.environ.items() if not key.startswith("DISTILL_")}
environment["DISTILL_EMBEDDING_MODEL_DIR"] = os.path.abspath(args.model)
for setting in args.daemon_env:
    key, separator, value = setting.partition("=")
    if not separator or not key.startswith("DISTILL_"):
        sys.exit(f"--daemon-env {setting!r}: expected DISTILL_KEY=VALUE")
    environment[key] = value


def start(command):
    """Starts a process and returns it with the http:// address it says it listens on."""
    log = open(os.path.join(directory, os.path.basename(command[0]) + ".log"), "w")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=environment, text=True)
    for line in process.stdout:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, found.group(1)
    sys.exit(f"{command[0]} stopped before listening: see {log.name}")


teacher, teacher_url = start([os.path.join(args.bin, "teacher-sim"), "--port", "0", "--soft-jsonl", args.data])
socket = os.path.join(directory, "distilld.sock")
daemon_command = [
    os.path.join(args.bin, "distilld"), "--http", "127.0.0.1:0", "--socket", socket,
    "--data-dir", os.path.join(directory, "data"), "--teacher-url", teacher_url + "/v1",
]
daemon, url = start(daemon_command)


def ask(text, headers=None):
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).encode()
    request = urllib.request.Request(url + "/v1/chat/completions", body, {"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=600) as reply:
        return reply.headers, json.load(reply)["choices"][0]["message"]["content"]


def cachectl(*arguments):
    return subprocess.run([os.path.join(args.bin, "cachectl"), "--socket", socket, *arguments], capture_output=True, text=True).stdout


try:
    print(f"learning from {len(learn)} teacher answers ({args.order} order)…", file=sys.stderr)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        learn_headers = {"x-distill-cache": "refresh"} if args.learn_through_teacher else {}
        list(pool.map(lambda row: ask(row["text"], learn_headers), learn))
    print("training…", file=sys.stderr)
    cachectl("distill", "run", "--wait")
    if args.asks_without_cache:
        daemon.terminate()
        daemon.wait()
        environment["DISTILL_CACHE_ENABLED"] = "false"
        daemon, url = start(daemon_command)
    # One at a time, in order: the shift test and any retraining see the stream as traffic would.
    counts = {source: [0, 0] for source in ("cache", "student", "teacher")}
    dump = open(args.dump, "w") if args.dump else None
    for position, row in enumerate(asks, 1):
        headers, answer = ask(row["text"])
        source = headers.get("x-distill-source")
        teacher_answer = row["top"][0][0]
        if dump:
            numbers = {key: float(headers[f"x-distill-{key}"]) for key in ("similarity", "confidence") if headers.get(f"x-distill-{key}")}
            dump.write(json.dumps({"position": position, "text": row["text"], "source": source, "answer": answer,
                                   "teacher": teacher_answer, "taught": taught[teacher_answer], **numbers}) + "\n")
        counts[source][0] += 1
        counts[source][1] += answer == teacher_answer
        if args.show_wrong and source == "student" and answer != teacher_answer:
            print(f"  wrong at {position}: {row['text']!r}: {answer}, the teacher {teacher_answer} "
                  f"(taught {taught[teacher_answer]} times)", flush=True)
        if position % 100 == 0:
            print(f"asked {position} of {len(asks)}", file=sys.stderr)
    if dump:
        dump.close()
    print(f"train rows: {len(learn)} in {args.order} order; asked: {len(asks)} {args.test} test rows")
    for source, (served, agreeing) in counts.items():
        agreement = f" at {agreeing / served:.1%} agreement" if served and source != "teacher" else ""
        print(f"  {source:8} {served:5} ({served / len(asks):.1%}){agreement}")
    print(cachectl("student", "status"))
    print(cachectl("distill", "status"))
finally:
    daemon.terminate()
    teacher.terminate()
    daemon.wait()
    teacher.wait()
