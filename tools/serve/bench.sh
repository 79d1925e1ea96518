#!/usr/bin/env bash
# tolk serve (float32, int8) against LibreTranslate: beam 4, 1/8/32 clients, 20 s per phase.
# Env: MODEL (zh-en MarianMT dir), LT_START + LT_PID_FILE (LibreTranslate on :5001), TOLK, OUT.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-serve-results}; mkdir -p $OUT
{ date; lscpu | grep -E 'Model name|CPU family|^Model:'; uptime; } > $OUT/machine.txt
# LibreTranslate
${LT_START:?path of a script that starts LibreTranslate on port 5001 and writes its PID to $LT_PID_FILE}
LTPID=$(cat "${LT_PID_FILE:?}")
python3 tools/serve/loadgen.py --url http://127.0.0.1:5001/translate --clients 1,8,32 --duration 20 --warmup 2 --timeout 900 --pid $LTPID --json $OUT/lt.json --label libretranslate > $OUT/lt.txt 2>&1
grep VmHWM /proc/$LTPID/status >> $OUT/lt.txt
kill $LTPID; sleep 3
for q in f32 int8; do
  extra=""; [ $q = int8 ] && extra="--quantize int8"
  ${TOLK:-target/release/tolk} serve --model ${MODEL:?a MarianMT zh-en directory, e.g. from ../shared/real-model/build.sh} --pair zh-en --port 5002 --threads 2 --num-beams 4 $extra -q > $OUT/tolk-$q.log 2>&1 &
  TPID=$!
  for i in $(seq 1 60); do curl -sf http://127.0.0.1:5002/readyz >/dev/null && break; sleep 1; done
  python3 tools/serve/loadgen.py --url http://127.0.0.1:5002/translate --clients 1,8,32 --duration 20 --warmup 2 --timeout 900 --pid $TPID --json $OUT/tolk-$q.json --label tolk-$q > $OUT/tolk-$q.txt 2>&1
  grep VmHWM /proc/$TPID/status >> $OUT/tolk-$q.txt
  kill $TPID; sleep 2
done
echo finished > $OUT/done
