#!/usr/bin/env bash
# Cache throughput over loopback TCP with wrk (Debian's wrk package): exact hits and semantic hits, and nginx
# (Debian's nginx-light) serving the very same bytes, side by side in the same run.
# Starts teacher-sim and a release distilld on a fresh data directory, caches one answer, then
#   - exact:    the same question again and again (normalized-text lookup, no embedding)
#   - nginx:    one nginx worker answering every POST with `return 200` and that cached completion's body
#               (and the x-distill-source header), the ceiling of what HTTP/1.1 over loopback allows here
#   - semantic: a paraphrase of it, again and again (a semantic hit adds no exact entry, so every
#               request embeds the message and searches the scope's index)
# exact and nginx alternate for ROUNDS rounds; every run reports wrk's figures, counting any answer that did
# not come from the cache as a failure, and the summary gives each exact run's share of the nginx run after it.
# Usage: scripts/bench-cache-wrk.sh [SECONDS] [CONNECTIONS] [ROUNDS]   (defaults: 30, 32, 2)
# DISTILL_BIN_DIR picks the binaries (default .build/release), to compare two builds; other
# DISTILL_ variables reach the daemon (DISTILL_CACHE_HOT_ANSWER_BYTES=0: every hit reads SQLite).
set -euo pipefail
# A bound loose enough that the verified cache's prior serves the paraphrase from the first lookup:
# this measures a served semantic hit, verification included, not how fast a scope learns.
export DISTILL_CACHE_MAX_ERROR="${DISTILL_CACHE_MAX_ERROR:-0.4}"
root="$(cd "$(dirname "$0")/.." && pwd)"
duration="${1:-30}"
connections="${2:-32}"
rounds="${3:-2}"
bin="${DISTILL_BIN_DIR:-$root/.build/release}"
data="$root/../shared/data/banking77/teacher_soft.jsonl"
work="$(mktemp -d)"
sim='' daemon='' nginx=''
trap 'kill $sim $daemon $nginx 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 1; }
[ -x "$bin/distilld" ] || { echo "build first: swift build -c release" >&2; exit 1; }

"$bin/teacher-sim" --port 0 --soft-jsonl "$data" > "$work/sim.out" 2> "$work/sim.err" &
sim=$!
until grep -q 'listening on' "$work/sim.out" 2>/dev/null; do kill -0 $sim; sleep 0.1; done
sim_url="$(grep -o 'http://[0-9.:]*' "$work/sim.out")"
DISTILL_EMBEDDING_MODEL_DIR="$root/models/all-MiniLM-L6-v2" DISTILL_LOG_LEVEL=warning \
  "$bin/distilld" --http 127.0.0.1:0 --socket "$work/d.sock" --data-dir "$work/data" --teacher-url "$sim_url/v1" \
  > "$work/d.out" 2> "$work/d.err" &
daemon=$!
until grep -q 'listening on http' "$work/d.out" 2>/dev/null; do kill -0 $daemon; sleep 0.1; done
url="$(grep -o 'http://[0-9.:]*' "$work/d.out")/v1/chat/completions"

body() { printf '{"model":"gpt-test","messages":[{"role":"system","content":"Classify the banking question."},{"role":"user","content":"%s"}]}' "$1"; }
# Cache the answer to the question.
curl -sf "$url" -H 'content-type: application/json' -d "$(body 'I am still waiting on my card?')" -o /dev/null

# The bytes of one exact hit, for nginx to serve.
curl -sf "$url" -H 'content-type: application/json' -d "$(body 'I am still waiting on my card?')" -o "$work/hit.json"
if grep -q '[$]' "$work/hit.json"; then echo "the cached answer has a \$, which nginx's return would expand" >&2; exit 1; fi
nginx_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$work/nginx"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      default_type application/json;
      add_header x-distill-source cache;
      return 200 '$(sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g" "$work/hit.json")';
    }
  }
}
CONF
nginx -e "$work/nginx/error.log" -c "$work/nginx.conf" -p "$work/nginx" &
nginx=$!
until curl -sf -o "$work/nginx.json" -X POST "http://127.0.0.1:$nginx_port/v1/chat/completions" -d '{}' 2>/dev/null; do
  kill -0 $nginx; sleep 0.1
done
cmp -s "$work/hit.json" "$work/nginx.json" || { echo "nginx does not serve the cached bytes" >&2; exit 1; }

script() {  # script NAME TEXT: a wrk script posting TEXT's request and counting answers not from the cache
  cat > "$work/$1.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$(body "$2")'
-- Each wrk thread has its own Lua state: count there, add up in done().
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) misses = 0 end
function response(status, headers, body)
  if headers["x-distill-source"] ~= "cache" then misses = misses + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("misses") end
  io.write(string.format("answers not from the cache: %d\\n", total))
end
LUA
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # user + system CPU time of process $1, in clock ticks

run() {  # run KIND URL: one wrk run, its output kept in $work/KIND.N, with distilld's CPU per answer
  local kind=$1 target=$2 n=$3 before
  echo "== $kind: wrk -t1 -c$connections -d${duration}s --latency"
  before="$(cpu_ticks $daemon)"
  wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$work/$kind.lua" "$target" | tee "$work/$kind.$n"
  # CPU time per answer does not depend on what else the machine is running, unlike the rate.
  [ "$kind" = nginx ] || awk -v ticks=$(($(cpu_ticks $daemon) - before)) -v hz="$(getconf CLK_TCK)" \
    '/requests in/ {printf "distilld CPU per answer: %.1f us\n", ticks / hz * 1e6 / $1}' "$work/$kind.$n" | tee -a "$work/$kind.$n"
}

for kind in exact semantic; do
  text='I am still waiting on my card?'
  [ "$kind" = semantic ] && text='Still waiting on my card?'
  source="$(curl -sf -D - -o /dev/null "$url" -H 'content-type: application/json' -d "$(body "$text")" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-distill-source"{print $2}')"
  [ "$source" = cache ] || { echo "$kind: expected a cache hit, got source '$source'" >&2; exit 1; }
  script "$kind" "$text"
done
cp "$work/exact.lua" "$work/nginx.lua"

for round in $(seq "$rounds"); do
  run exact "$url" "$round"
  run nginx "http://127.0.0.1:$nginx_port/v1/chat/completions" "$round"
done
run semantic "$url" 1

rate() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
cpu() { awk '/CPU per answer/ {print $5, $6}' "$1"; }
echo "== summary ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs, wrk -t1 -c$connections, ${duration}s runs)"
for round in $(seq "$rounds"); do
  exact="$(rate "$work/exact.$round")" served="$(rate "$work/nginx.$round")"
  echo "round $round: exact hits $exact/s, nginx $served/s, exact/nginx $(python3 -c "print(f'{$exact / $served:.3f}')"), $(cpu "$work/exact.$round") of distilld's CPU per hit"
done
echo "semantic hits $(rate "$work/semantic.1")/s, $(cpu "$work/semantic.1") of distilld's CPU per hit"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
