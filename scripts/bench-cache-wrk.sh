#!/usr/bin/env bash
# Cache throughput over loopback TCP with wrk (Debian's wrk package): exact hits and semantic hits.
# Starts teacher-sim and a release distilld on a fresh data directory, caches one answer, then
#   - exact:    the same question again and again (normalized-text lookup, no embedding)
#   - semantic: a paraphrase of it, again and again (a semantic hit adds no exact entry, so every
#               request embeds the message and searches the scope's index)
# and reports wrk's figures, counting any answer that did not come from the cache as a failure.
# Usage: scripts/bench-cache-wrk.sh [SECONDS] [CONNECTIONS]   (defaults: 30, 32)
# DISTILL_BIN_DIR picks the binaries (default .build/release), to compare two builds; other
# DISTILL_ variables reach the daemon (DISTILL_CACHE_HOT_ANSWER_BYTES=0: every hit reads SQLite).
set -euo pipefail
# A bound loose enough that the verified cache's prior serves the paraphrase from the first lookup:
# this measures a served semantic hit, verification included, not how fast a scope learns.
export DISTILL_CACHE_MAX_ERROR="${DISTILL_CACHE_MAX_ERROR:-0.4}"
root="$(cd "$(dirname "$0")/.." && pwd)"
duration="${1:-30}"
connections="${2:-32}"
bin="${DISTILL_BIN_DIR:-$root/.build/release}"
data="$root/../shared/data/banking77/teacher_soft.jsonl"
work="$(mktemp -d)"
trap 'kill $sim $daemon 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
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

for kind in exact semantic; do
  text='I am still waiting on my card?'
  [ "$kind" = semantic ] && text='Still waiting on my card?'
  source="$(curl -sf -D - -o /dev/null "$url" -H 'content-type: application/json' -d "$(body "$text")" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-distill-source"{print $2}')"
  [ "$source" = cache ] || { echo "$kind: expected a cache hit, got source '$source'" >&2; exit 1; }
  cat > "$work/$kind.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$(body "$text")'
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
  io.write(string.format("answers not from the cache: %d\n", total))
end
LUA
  echo "== $kind hits: wrk -t1 -c$connections -d${duration}s --latency"
  wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$work/$kind.lua" "$url"
done
