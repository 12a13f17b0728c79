#!/usr/bin/env bash
# A Slurm cluster on this machine (munge, slurmctld, slurmd; no systemd), for the `slurm` tests and
# for trying the sweep scripts before a real cluster. One node by default; SLURM_LOCAL_NODES=2 (up to 8)
# gives real separate nodes: each a network and UTS namespace with its own hostname (node1, node2, ...)
# and slurmd, joined to the controller and to each other by veth links on a bridge (10.231.77.0/24,
# addresses only inside this machine), sharing the file system as a cluster's nodes share theirs. MPI
# between them goes over TCP; each node has its own TmpFS (PMIx's per-job directories).
#
#   slurm/local-cluster.sh start     write the config, start munged/slurmctld/slurmd, wait for an idle node
#   slurm/local-cluster.sh stop      stop the daemons this script started
#   slurm/local-cluster.sh status    daemons, node and queue
#   slurm/local-cluster.sh env       the line to paste so sbatch/squeue find this cluster
#
# State (config, spool, logs, pid files) lives in $SLURM_LOCAL_DIR (default: <repo>/.slurm-local, or
# <repo>/.slurm-local-<N>nodes). The config is written there; for one node /etc/slurm/slurm.conf
# becomes a link to it only when that file is absent or was written by this script, so an existing
# cluster's config is never overwritten. If it is someone else's, or for several nodes (their own
# ports, 6827/6828, so both clusters can run at once), export SLURM_CONF as `env` prints.
#
# Needs root (the daemons run as root: no cgroups, no accounting; a dev/CI box, not a production
# config) and slurmctld slurmd slurm-client munge (scripts/install-deps.sh installs them).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
nodes="${SLURM_LOCAL_NODES:-1}"
[[ "$nodes" =~ ^[1-8]$ ]] || { echo "local-cluster: error: SLURM_LOCAL_NODES=$nodes: give 1 to 8" >&2; exit 2; }
if [[ $nodes -eq 1 ]]; then dir="${SLURM_LOCAL_DIR:-$here/../.slurm-local}"; else dir="${SLURM_LOCAL_DIR:-$here/../.slurm-local-${nodes}nodes}"; fi
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

# The node names and the daemons (pid file names) of this cluster.
node_names() { if [[ $nodes -eq 1 ]]; then echo localhost; else seq -f 'node%g' 1 "$nodes"; fi; }
slurmd_name() { if [[ $nodes -eq 1 ]]; then echo slurmd; else echo "slurmd-$1"; fi; }
all_slurmd_alive() {
  local n
  for n in $(node_names); do alive "$(slurmd_name "$n")" || return 1; done
}

# Several nodes: a bridge with the controller's address, a network namespace per node on a veth pair.
subnet=10.231.77
bridge=universae-br
netns() { echo "universae-$1"; }
network_up() {
  command -v ip >/dev/null || die "ip (iproute2) is not installed: run scripts/install-deps.sh"
  ip link show "$bridge" >/dev/null 2>&1 || ip link add "$bridge" type bridge || die "cannot create the bridge $bridge"
  ip addr show dev "$bridge" | grep -q "$subnet.1/24" || ip addr add "$subnet.1/24" dev "$bridge"
  ip link set "$bridge" up
  local i ns
  for i in $(seq "$nodes"); do
    ns="$(netns "node$i")"
    ip netns list | grep -qw "$ns" || ip netns add "$ns" || die "cannot create the network namespace $ns"
    if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
      ip link del "uv-node$i" 2>/dev/null || true  # the half of a pair whose namespace went away
      ip link add "uv-node$i" type veth peer name eth0 netns "$ns" || die "cannot create the veth link of node$i"
    fi
    ip link set "uv-node$i" master "$bridge" up
    ip -n "$ns" addr show dev eth0 | grep -q "$subnet.$((10 + i))/24" || ip -n "$ns" addr add "$subnet.$((10 + i))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
  done
}
network_down() {
  local i
  for i in $(seq "$nodes"); do
    ip link del "uv-node$i" 2>/dev/null || true  # both ends of the pair
    ip netns del "$(netns "node$i")" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
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
  node="$(sed -e 's/^NodeName=[^ ]* //' -e "s/RealMemory=[0-9]*/RealMemory=$mem/" <<< "$node")"
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/run"
  local head nodelines partition i slurmd_file
  if [[ $nodes -eq 1 ]]; then
    head="ClusterName=local
SlurmctldHost=localhost(127.0.0.1)"
    nodelines="NodeName=localhost NodeAddr=127.0.0.1 $node State=UNKNOWN"
    partition="localhost"
    slurmd_file=slurmd
  else
    # Every node reads its own copy (its TmpFS differs), hence no config hash check.
    head="ClusterName=local${nodes}
SlurmctldHost=localhost($subnet.1)
SlurmctldPort=6827
SlurmdPort=6828
DebugFlags=NO_CONF_HASH"
    nodelines=""
    for i in $(seq "$nodes"); do
      nodelines+="NodeName=node$i NodeAddr=$subnet.$((10 + i)) $node State=UNKNOWN"$'\n'
    done
    partition="node[1-$nodes]"
    slurmd_file='slurmd-%n'
  fi
  cat > "$conf" <<EOF
$marker ($(date -Is)); rewritten on every start
$head
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
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/$slurmd_file.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/$slurmd_file.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MinJobAge=3600
$nodelines
PartitionName=debug Nodes=$partition Default=YES MaxTime=INFINITE State=UP
EOF
  if [[ $nodes -gt 1 ]]; then
    for i in $(seq "$nodes"); do
      mkdir -p "$dir/tmp/node$i"
      sed "s|^SlurmUser=root|TmpFS=$dir/tmp/node$i\nSlurmUser=root|" "$conf" > "$dir/slurm-node$i.conf"
    done
    return 0
  fi
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
  if alive slurmctld && all_slurmd_alive; then
    say "already running ($dir)"
  else
    local t0=$EPOCHREALTIME n
    write_config
    start_munge
    [[ $nodes -eq 1 ]] || network_up
    alive slurmctld || /usr/sbin/slurmctld -f "$conf" || die "slurmctld failed to start: $dir/log/slurmctld.log"
    for n in $(node_names); do
      alive "$(slurmd_name "$n")" && continue
      if [[ $nodes -eq 1 ]]; then
        /usr/sbin/slurmd -f "$conf" -N localhost || die "slurmd failed to start: $dir/log/slurmd.log"
      else
        # Its own network (the veth address) and hostname; the file system stays shared. nsenter, not
        # `ip netns exec`, which would remount /sys and hide the cgroup file system slurmd reads.
        nsenter --net="/run/netns/$(netns "$n")" unshare --uts \
          sh -c "hostname $n && exec /usr/sbin/slurmd -f '$dir/slurm-$n.conf'" || die "slurmd of $n failed to start: $dir/log/slurmd-$n.log"
      fi
    done
    wait_idle
    say "up in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s ($dir)"
  fi
  status
}

wait_idle() {  # every node idle (a node that comes up drained or down is resumed)
  local states n
  for _ in $(seq 150); do
    states="$(client sinfo -h -N -o '%N %T' 2>/dev/null || true)"
    if [[ -n "$states" ]] && ! grep -qvE ' (idle|mixed|allocated)' <<< "$states"; then return 0; fi
    for n in $(grep -E ' (drain|down)' <<< "$states" | cut -d' ' -f1); do
      client scontrol update nodename="$n" state=resume >/dev/null 2>&1 || true
    done
    sleep 0.2
  done
  die "the nodes did not become idle ($(tr '\n' ' ' <<< "${states:-no answer}")); see $dir/log/slurmctld.log and slurmd*.log"
}

stop() {
  local name pid jobs
  # Jobs first: slurmstepd outlives slurmd, and its ranks would go on running (and writing) unowned.
  if alive slurmctld; then
    jobs="$(client squeue -h -o %A 2>/dev/null | tr '\n' ' ')"
    if [[ -n "${jobs// /}" ]]; then
      client scancel $jobs >/dev/null 2>&1 || true
      for _ in $(seq 100); do [[ -z "$(client squeue -h -o %A 2>/dev/null)" ]] && break; sleep 0.2; done
      say "cancelled jobs $jobs"
    fi
  fi
  for name in $(for n in $(node_names); do slurmd_name "$n"; done) slurmctld; do
    if alive "$name"; then
      pid="$(cat "$dir/run/$name.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      say "stopped $name"
    fi
  done
  [[ $nodes -eq 1 ]] || network_down
  # munged is shared with another local cluster still running (the other node count): leave it to that one.
  if [[ -f "$dir/run/munged.ours" ]] && ! pgrep -x slurmctld >/dev/null; then
    pkill -u munge -x munged 2>/dev/null || true
    rm -f "$dir/run/munged.ours"
    say "stopped munged"
  fi
}

status() {
  local name
  for name in slurmctld $(for n in $(node_names); do slurmd_name "$n"; done); do
    if alive "$name"; then say "$name running (pid $(cat "$dir/run/$name.pid"))"; else say "$name not running"; fi
  done
  if alive slurmctld; then
    client sinfo || true
    client squeue || true
  fi
  env_line
}

env_line() {
  if [[ $nodes -eq 1 && "$(readlink -f "$system_conf" 2>/dev/null)" == "$conf" ]]; then
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
