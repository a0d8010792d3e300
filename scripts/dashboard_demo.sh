#!/usr/bin/env bash
# dashboard_demo.sh URL [SECONDS] [OUT.png] -- traffic for the dashboard to
# show, then its screenshot (docs/dashboard.png was made this way).
#
# Against a running tierd's HTTP port (a --no-auth one, or export
# TIER_TOKEN as an admin token) with workers and the default levels: adds
# 200 files to the default level (AddContent), then for SECONDS (default
# 180) reports views (some crossing into silver and gold, so workers move
# files), and posts, edits and deletes comments; 5 of the files are
# removed first so their moves fail.  Then node tests/browser/screenshot.mjs.
# DEMO_FIRST=CID skips the set-up (a second run: the files of CID..CID+199
# are registered already).
# Only ever talks to URL.
set -euo pipefail
url=${1:?usage: dashboard_demo.sh URL [SECONDS] [OUT.png]}
secs=${2:-180}
out=${3:-docs/dashboard.png}
here=$(cd "$(dirname "$0")/.." && pwd)
auth=()
[[ -n "${TIER_TOKEN:-}" ]] && auth=(-H "Authorization: Bearer $TIER_TOKEN")

api() { curl -sf "${auth[@]}" -X POST "$url/v1/$1" -d "$2"; }

if [[ -n "${DEMO_FIRST:-}" ]]; then
    first=$DEMO_FIRST
else
dir=$(api ListLevels '{}' | sed -E 's/.*"name":"bronze"[^}]*"path":"([^"]*)".*/\1/')
[[ -d "$dir" ]] || { echo "dashboard_demo.sh: no bronze directory ($dir)" >&2; exit 1; }
for i in $(seq 0 199); do
    head -c $(( (RANDOM % 400 + 1) * 1024 )) /dev/urandom > "$dir/demo-$i.mp4"
done
first=$(api AddContent '{"filename": "demo-0.mp4"}' | sed -E 's/.*"cid":"([0-9]+)".*/\1/')
for i in $(seq 1 199); do api AddContent "{\"filename\": \"demo-$i.mp4\"}" > /dev/null; done
for i in 3 17 42 99 150; do rm -f "$dir/demo-$i.mp4"; done
fi

words=(great nice "not again" "+1" "first!" "where is part 2?" "love it" meh "so true" "<b>bold?</b>")
services=(news blog video)
end=$(( $(date +%s) + secs ))
shot=
while (( $(date +%s) < end )); do
    # The picture is taken while traffic still flows (throughput > 0).
    if [[ -z "$shot" ]] && (( $(date +%s) >= end - 15 )); then
        node "$here/tests/browser/screenshot.mjs" "$url" "$out" "${TIER_TOKEN:-}" "$first" &
        shot=$!
    fi
    reps=""
    for _ in $(seq 1 40); do
        cid=$(( first + RANDOM % 200 ))
        r=$(( RANDOM % 100 ))
        if (( r < 80 )); then n=$(( RANDOM % 1000 )); elif (( r < 95 )); then n=$(( 1000 + RANDOM % 1000 )); else n=$(( 2000 + RANDOM )); fi
        reps+="{\"cid\": $cid, \"count\": $n},"
    done
    api ReportViews "{\"reports\": [${reps%,}]}" > /dev/null
    for _ in $(seq 1 $(( RANDOM % 6 ))); do
        cid=$(( first + (RANDOM % 30) * (RANDOM % 7) % 200 ))
        api PostComment "{\"service\": \"${services[RANDOM % 3]}\", \"cid\": $cid, \"author\": \"user$(( RANDOM % 50 ))\", \"body\": \"${words[RANDOM % 10]}\"}" > /dev/null
    done
    if (( RANDOM % 4 == 0 )); then
        id=$(( RANDOM % 50 + 1 ))
        api DeleteComment "{\"id\": $id}" > /dev/null 2>&1 || true
    fi
    sleep 0.5
done
[[ -n "$shot" ]] || { node "$here/tests/browser/screenshot.mjs" "$url" "$out" "${TIER_TOKEN:-}" "$first" & shot=$!; }
wait "$shot"
echo "dashboard_demo.sh: $out"
