#!/usr/bin/env bash
# A single-node Slurm cluster on this machine (munge, slurmctld, slurmd; no systemd), for the
# `slurm` tests and for trying the sweep scripts before a real cluster.
#
#   slurm/local-cluster.sh start     write the config, start munged/slurmctld/slurmd, wait for an idle node
#   slurm/local-cluster.sh stop      stop the daemons this script started
#   slurm/local-cluster.sh status    daemons, node and queue
#   slurm/local-cluster.sh env       the line to paste so sbatch/squeue find this cluster
#
# State (config, spool, logs, pid files) lives in $SLURM_LOCAL_DIR (default: <repo>/.slurm-local).
# The config is written there; /etc/slurm/slurm.conf becomes a link to it only when that file is
# absent or was written by this script, so an existing cluster's config is never overwritten. If it
# is someone else's, export SLURM_CONF as `env` prints.
#
# Needs root (the daemons run as root: no cgroups, no accounting; a dev/CI box, not a production
# config) and slurmctld slurmd slurm-client munge (scripts/install-deps.sh installs them).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dir="${SLURM_LOCAL_DIR:-$here/../.slurm-local}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
conf="$dir/slurm.conf"
marker="# written by universae slurm/local-cluster.sh"
system_conf=/etc/slurm/slurm.conf

say() { echo "local-cluster: $*"; }
die() { echo "local-cluster: error: $*" >&2; exit 2; }
client() { SLURM_CONF="$conf" timeout 5 "$@"; }

alive() {  # alive NAME: the daemon whose pid file this script wrote is running
  local pid
  pid="$(cat "$dir/run/$1.pid" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

write_config() {
  # The node as slurmd detects it (CPUs, boards, sockets, cores, threads): a partial topology makes
  # slurmd complain, and `nproc` is no help (it follows OMP_NUM_THREADS). RealMemory above what
  # slurmd detects drains the node ("Low RealMemory"): leave 512 MB.
  local node mem
  node="$(slurmd -C | head -1)"
  [[ "$node" == NodeName=* ]] || die "slurmd -C did not describe this node: $node"
  mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<< "$node")"
  mem=$(( mem > 1024 ? mem - 512 : mem ))
  node="$(sed -e 's/^NodeName=[^ ]*/NodeName=localhost NodeAddr=127.0.0.1/' -e "s/RealMemory=[0-9]*/RealMemory=$mem/" <<< "$node")"
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/run"
  cat > "$conf" <<EOF
$marker ($(date -Is)); rewritten on every start
ClusterName=local
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
JobRequeue=1
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MinJobAge=3600
$node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  if [[ ! -e "$system_conf" ]] || grep -qF "$marker" "$system_conf" 2>/dev/null || [[ "$(readlink -f "$system_conf")" == "$conf" ]]; then
    mkdir -p "$(dirname "$system_conf")"
    ln -sfn "$conf" "$system_conf"
  else
    say "$system_conf belongs to another cluster and is left alone; use: export SLURM_CONF=$conf"
  fi
}

start_munge() {
  if echo | munge 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  [[ -f /etc/munge/munge.key ]] || die "/etc/munge/munge.key is missing (reinstall munge: apt-get install --reinstall munge)"
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  touch "$dir/run/munged.ours"
  for _ in $(seq 50); do
    echo | munge 2>/dev/null | unmunge >/dev/null 2>&1 && return
    sleep 0.1
  done
  die "munged did not come up (see /var/log/munge/munged.log)"
}

start() {
  [[ $(id -u) -eq 0 ]] || die "run as root (the daemons run as root on this dev/CI cluster)"
  for b in slurmctld slurmd sbatch munged; do
    command -v "$b" >/dev/null || [[ -x /usr/sbin/$b ]] || die "$b is not installed: run scripts/install-deps.sh"
  done
  # Slurm resolves localhost itself; without an /etc/hosts entry client calls hang on DNS.
  getent hosts localhost >/dev/null || die "localhost does not resolve: add '127.0.0.1 localhost' to /etc/hosts"
  if alive slurmctld && alive slurmd; then
    say "already running ($dir)"
  else
    local t0=$EPOCHREALTIME
    write_config
    start_munge
    alive slurmctld || /usr/sbin/slurmctld -f "$conf" || die "slurmctld failed to start: $dir/log/slurmctld.log"
    alive slurmd || /usr/sbin/slurmd -f "$conf" -N localhost || die "slurmd failed to start: $dir/log/slurmd.log"
    local state=""
    for _ in $(seq 150); do
      state="$(client sinfo -h -n localhost -o %T 2>/dev/null || true)"
      case "$state" in
        idle*|mixed*|allocated*) break ;;
        drain*|down*) client scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
      esac
      sleep 0.2
    done
    case "$state" in
      idle*|mixed*|allocated*) ;;
      *) die "the node did not become idle (state '${state:-none}'); see $dir/log/slurmctld.log and slurmd.log" ;;
    esac
    say "up in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s ($dir)"
  fi
  status
}

stop() {
  local name pid
  for name in slurmd slurmctld; do
    if alive "$name"; then
      pid="$(cat "$dir/run/$name.pid")"
      kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      say "stopped $name"
    fi
  done
  if [[ -f "$dir/run/munged.ours" ]]; then
    pkill -u munge -x munged 2>/dev/null || true
    rm -f "$dir/run/munged.ours"
    say "stopped munged"
  fi
}

status() {
  local name
  for name in slurmctld slurmd; do
    if alive "$name"; then say "$name running (pid $(cat "$dir/run/$name.pid"))"; else say "$name not running"; fi
  done
  if alive slurmctld; then
    client sinfo || true
    client squeue || true
  fi
  env_line
}

env_line() {
  if [[ "$(readlink -f "$system_conf" 2>/dev/null)" == "$conf" ]]; then
    say "sbatch and squeue find this cluster through $system_conf"
  else
    echo "export SLURM_CONF=$conf"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) env_line ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
