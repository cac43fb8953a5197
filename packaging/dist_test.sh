#!/usr/bin/env bash
# Smoke-test a built bundle (make dist-test): self-test, a real file indexed and searched,
# then the GUI under Xvfb with a screenshot, then SIGTERM and a check that it and every
# process it started went away.
#   packaging/dist_test.sh dist/avindex [OUTDIR]
set -uo pipefail
BUNDLE=$(cd "${1:-dist/avindex}" && pwd)
OUT=${2:-dist/dist-test}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-$HERE/../.venv/bin/python}
# A fresh data dir: the bundle assembles and exports its models from scratch, as on a new machine.
export AVINDEX_DATA_DIR=$(mktemp -d /tmp/avindex-dist-test.XXXXXX)
export AVINDEX_LIBRARY=$AVINDEX_DATA_DIR/library.db
status=0

echo "== $BUNDLE/avindex self-test"
start=$(date +%s.%N)
"$BUNDLE/avindex" self-test 2> "$OUT/self-test.stderr"
rc=$?
echo "self-test exit $rc in $(printf %.1f "$(echo "$(date +%s.%N) - $start" | bc)") s (stderr: $OUT/self-test.stderr)"
[ $rc -eq 0 ] || status=1

# A real file through every stage (speech, text, visual, motion) and back out by search:
# imports that the self-test does not reach (yake's data, the stripped libraries) run here.
echo "== $BUNDLE/avindex index, then search"
if command -v espeak-ng >/dev/null && command -v ffmpeg >/dev/null; then
    media=$AVINDEX_DATA_DIR/media
    mkdir -p "$media"
    espeak-ng -w "$media/speech.wav" \
        "The weather was cold this morning, so we stayed inside and read books by the fire."
    ffmpeg -nostdin -y -loglevel error -f lavfi -i "testsrc=size=320x240:rate=10" \
        -i "$media/speech.wav" -shortest -c:v libx264 -preset ultrafast -pix_fmt yuv420p \
        -c:a aac "$media/talk.mp4"
    start=$(date +%s.%N)
    "$BUNDLE/avindex" index -q "$media/talk.mp4" > "$OUT/index.log" 2>&1
    rc=$?
    "$BUNDLE/avindex" search "books by the fire" > "$OUT/search.log" 2>&1
    echo "index exit $rc in $(printf %.1f "$(echo "$(date +%s.%N) - $start" | bc)") s; search: $(head -1 "$OUT/search.log")"
    if [ $rc -ne 0 ] || grep -q -i "failed" "$OUT/index.log" || ! grep -q "talk.mp4" "$OUT/search.log"; then
        echo "index/search check failed:"; tail -5 "$OUT/index.log"; status=1
    fi
else
    echo "espeak-ng or ffmpeg missing (make setup-test): index check skipped"
fi

if ! command -v xvfb-run >/dev/null; then
    echo "xvfb-run missing: sudo apt-get install -y xvfb xauth" >&2; exit 1
fi
echo "== GUI under xvfb-run: $BUNDLE/avindex-gui"
xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
    BUNDLE=$1 OUT=$2 PY=$3
    setsid "$BUNDLE/avindex-gui" > "$OUT/gui.log" 2>&1 &
    pid=$!
    "$PY" "$(dirname "$0")/screenshot.py" "$OUT/gui.png" 90; shot=$?
    if ! kill -0 $pid 2>/dev/null; then
        wait $pid; echo "GUI exited early with $? (see $OUT/gui.log)"; exit 1
    fi
    kids=$(pgrep -g $pid | grep -vx $pid | wc -l)
    echo "GUI running (pid $pid, $kids other process(es) in its group); sending SIGTERM"
    kill -TERM $pid
    for i in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    if kill -0 $pid 2>/dev/null; then
        echo "GUI still running 10 s after SIGTERM"; kill -KILL -$pid; exit 1
    fi
    wait $pid; rc=$?
    sleep 1
    left=$(pgrep -g $pid | wc -l)
    echo "GUI exit status $rc after SIGTERM ($([ $rc -eq 143 ] && echo "terminated by SIGTERM" || echo "exited itself")); $left process(es) left in its group"
    if grep -q -E "Traceback|Segmentation|core dumped" "$OUT/gui.log"; then
        echo "errors in $OUT/gui.log:"; grep -E -A3 "Traceback|Segmentation|core dumped" "$OUT/gui.log"; exit 1
    fi
    [ $shot -eq 0 ] && { [ $rc -eq 0 ] || [ $rc -eq 143 ]; } && [ $left -eq 0 ]
' "$HERE/dist_test.sh" "$BUNDLE" "$OUT" "$PY"
rc=$?
[ $rc -eq 0 ] || status=1
echo "GUI check exit $rc; screenshot $OUT/gui.png"
rm -rf "$AVINDEX_DATA_DIR"
[ $status -eq 0 ] && echo "dist-test passed" || echo "dist-test FAILED"
exit $status
