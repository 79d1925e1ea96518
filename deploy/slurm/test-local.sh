#!/bin/bash
# Proves deploy/slurm/tolk-batch.sbatch on a real Slurm: installs Debian's slurm-wlm (slurmctld,
# slurmd) and munge as a single-node cluster on this machine, submits the job array over a corpus
# of small articles with the tiny test model, and checks that every input has exactly one output
# and every shard its report; then that submitting again resumes (everything skipped), and that
# an aborted shard (exit status 3) fails its task and finishes when submitted again.
#
#   sudo deploy/slurm/test-local.sh        # prints PASS or FAIL last; exit status 0 on PASS
#
# Needs root and Debian (12 has slurm-wlm 22.05) with apt access; a few minutes. It changes the
# machine: it installs packages and writes /etc/slurm/slurm.conf (an existing one is kept as
# slurm.conf.before-tolk-test). The daemons it starts are stopped at the end (KEEP=1 keeps
# them). Not part of .ci/run. Variables: TOLK_BIN (default target/release/tolk, built if
# missing), WORK (default /tmp/tolk-slurm-test), SHARDS (default 3).
set -Eeuo pipefail
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-/tmp/tolk-slurm-test}
SHARDS=${SHARDS:-3}
FILES=20
STARTED=()

say() { printf '==> %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        [ ${#STARTED[@]} -gt 0 ] && say "left running (KEEP=1): pids ${STARTED[*]}"
        return
    fi
    for pid in "${STARTED[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || fail "run as root: this installs and starts Slurm"
command -v apt-get >/dev/null || fail "needs Debian's apt-get"

# 1. Packages.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null || ! command -v jq >/dev/null; then
    say "installing slurm-wlm, munge and jq"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge jq >/dev/null
fi
say "$(slurmctld -V)"

# 2. munge: a key, its run directory (not created without systemd), the daemon.
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null || fail "munged does not answer"
    if [ -s /run/munge/munged.pid ]; then
        STARTED+=("$(cat /run/munge/munged.pid)")
    fi
fi

# 3. A single-node cluster: this host, its CPUs and memory; no cgroups, no accounting database.
HOST=$(hostname -s)
CPUS=$(nproc)
MEMORY=$(free -m | awk '/^Mem:/ { print int($2 * 0.9) }')
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if [ -f /etc/slurm/slurm.conf ] && ! grep -q '^# Written by tolk' /etc/slurm/slurm.conf; then
    cp /etc/slurm/slurm.conf /etc/slurm/slurm.conf.before-tolk-test
fi
cat > /etc/slurm/slurm.conf <<EOF
# Written by tolk's deploy/slurm/test-local.sh: a single-node test cluster.
ClusterName=tolktest
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
SlurmdParameters=config_overrides
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY State=UNKNOWN
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
say "slurm.conf: node $HOST, $CPUS CPUs, $MEMORY MB"

start_daemon() { # NAME PIDFILE
    local name=$1 pidfile=$2
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        say "$name already runs (pid $(cat "$pidfile")): reconfiguring"
        scontrol reconfigure >/dev/null 2>&1 || true
        return
    fi
    say "starting $name"
    "$name" || fail "$name did not start; see /var/log/slurm/$name.log"
    for _ in $(seq 50); do
        [ -s "$pidfile" ] && break
        sleep 0.1
    done
    [ -s "$pidfile" ] || fail "$name wrote no pid file; see /var/log/slurm/$name.log"
    STARTED+=("$(cat "$pidfile")")
}
start_daemon slurmctld /run/slurmctld.pid
for _ in $(seq 100); do
    scontrol ping 2>/dev/null | grep -q UP && break
    sleep 0.2
done
start_daemon slurmd /run/slurmd.pid
state=""
for _ in $(seq 100); do
    state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
    case "$state" in
        idle*|mix*|alloc*) break ;;
        down*|drain*|drng*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.3
done
case "$state" in idle*|mix*|alloc*) ;; *) fail "node $HOST is '$state'; see /var/log/slurm/" ;; esac
say "node $HOST is $state"

# 4. tolk and a corpus of small Dutch articles.
TOLK=${TOLK_BIN:-$REPO/target/release/tolk}
if [ ! -x "$TOLK" ]; then
    say "building tolk"
    (cd "$REPO" && cargo build --release --locked --bin tolk)
fi
MODEL=$REPO/tests/fixtures/marian-tiny
[ -f "$MODEL/config.json" ] || fail "no test model at $MODEL"
rm -rf "$WORK"
mkdir -p "$WORK/in/nieuws" "$WORK/in/sport" "$WORK/logs"
places=(Utrecht Groningen Zwolle Leiden Delft Arnhem Breda Tilburg Haarlem Almere)
for i in $(seq 1 $FILES); do
    place=${places[$(( (i - 1) % 10 ))]}
    dir=nieuws
    [ $((i % 4)) = 0 ] && dir=sport
    cat > "$WORK/in/$dir/bericht-$i.txt" <<EOF
Nieuwe plannen voor $place

De gemeente $place wil $((i * 10)) nieuwe woningen bouwen. De bouw begint volgend jaar.

Volgens de wethouder is dat goed nieuws voor de stad. Bewoners kunnen tot maart reageren.
EOF
done
export PATH="$(dirname "$TOLK"):$PATH"
export TOLK_CACHE_DIR=$WORK/cache
cd "$WORK"

# Submits the array (extra sbatch options first), waits for it, prints the job id.
run_array() { # OUT_DIR SBATCH_OPTIONS...
    local out=$1
    shift
    local job
    job=$(sbatch --parsable "$@" --cpus-per-task=1 --mem=200M --time=00:10:00 \
        --output="$WORK/logs/tolk-%A_%a.log" \
        "$REPO/deploy/slurm/tolk-batch.sbatch" "$WORK/in" "$out" \
        --model "$MODEL" --max-new-tokens 10) || fail "sbatch refused the job"
    job=${job%%;*}
    for _ in $(seq 600); do
        [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
        sleep 0.5
    done
    [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] || fail "job $job still runs after 5 minutes"
    echo "$job"
}

# "TASK STATE EXIT" for each task of a finished array job.
task_states() { # JOB
    scontrol -o show job "$1" \
        | sed -n 's/.* ArrayTaskId=\([0-9]*\) .* JobState=\([A-Z_]*\) .* ExitCode=\([0-9:]*\).*/\1 \2 \3/p' \
        | sort -n
}

# Every input exactly once in the shard reports, and one output each.
check_outputs() { # OUT_DIR
    local out=$1 inputs listed outputs
    inputs=$(cd "$WORK/in" && find . -name '*.txt' | sed 's|^\./||' | sort)
    listed=$(jq -r '.files[].input' "$out"/tolk-report-shard-*-of-"$SHARDS".json | sort)
    [ "$listed" = "$inputs" ] || fail "the shard reports do not list every input exactly once"
    outputs=$(cd "$out" && find . -name '*.json' ! -name 'tolk-report-*' | sed 's|^\./||' | sort)
    [ "$outputs" = "$(echo "$inputs" | sed 's/\.txt$/.json/')" ] \
        || fail "not exactly one output per input in $out"
    for input in $inputs; do
        jq -e '.sentences | length > 0' "$out/${input%.txt}.json" >/dev/null \
            || fail "$out/${input%.txt}.json has no sentences"
    done
}

say "submitting tolk-batch.sbatch --array=0-$((SHARDS - 1)) over $FILES articles"
job=$(run_array "$WORK/out" --array=0-$((SHARDS - 1)))
states=$(task_states "$job")
echo "$states" | sed 's/^/    task /'
[ "$(echo "$states" | grep -c ' COMPLETED 0:0$')" = "$SHARDS" ] || fail "not every task completed"
for k in $(seq 0 $((SHARDS - 1))); do
    [ -f "$WORK/out/tolk-report-shard-$k-of-$SHARDS.json" ] || fail "shard $k has no report"
    jq -r --arg k "$k" '"    shard \($k): \(.done) done, \(.skipped) skipped, \(.failed) failed"' \
        "$WORK/out/tolk-report-shard-$k-of-$SHARDS.json"
done
check_outputs "$WORK/out"
[ "$(jq -s 'map(.done) | add' "$WORK"/out/tolk-report-shard-*.json)" = "$FILES" ] \
    || fail "not every article was translated"
say "every input has exactly one output, every shard its report"

say "submitting again: everything is skipped"
job=$(run_array "$WORK/out" --array=0-$((SHARDS - 1)))
[ "$(task_states "$job" | grep -c ' COMPLETED 0:0$')" = "$SHARDS" ] || fail "the second run failed"
[ "$(jq -s 'map(.skipped) | add' "$WORK"/out/tolk-report-shard-*.json)" = "$FILES" ] \
    || fail "the second run did not skip every article"

say "an output directory that becomes unusable: the shard exits 3, its task fails"
blocked=nieuws/bericht-1
mkdir -p "$WORK/out2/$blocked.json"
job=$(run_array "$WORK/out2" --array=0-$((SHARDS - 1)))
states=$(task_states "$job")
echo "$states" | sed 's/^/    task /'
aborted=$(echo "$states" | awk '$3 == "3:0" { print $1 }')
[ -n "$aborted" ] && [ "$(echo "$aborted" | wc -l)" = 1 ] || fail "no task (or more than one) exited 3"
echo "$states" | grep -q "^$aborted FAILED 3:0$" || fail "task $aborted did not fail"
[ "$(echo "$states" | grep -c ' COMPLETED 0:0$')" = $((SHARDS - 1)) ] || fail "the other tasks did not complete"
grep -q "requeue or resubmit" "$WORK/logs/tolk-${job}_$aborted.log" || fail "no hint in the task's log"
rmdir "$WORK/out2/$blocked.json"
say "resubmitting task $aborted alone (TOLK_SHARDS=$SHARDS): it resumes"
job=$(run_array "$WORK/out2" --array="$aborted" --export=ALL,TOLK_SHARDS="$SHARDS")
task_states "$job" | grep -q "^$aborted COMPLETED 0:0$" || fail "the resubmitted task failed"
check_outputs "$WORK/out2"

echo "PASS: $SHARDS shards, $FILES articles, each translated once; resubmitting resumes; an aborted shard exits 3 and finishes when resubmitted"
