#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the tests (and to try the scripts): Debian's
# slurm-wlm and munge, slurmctld and slurmd on localhost with this machine's CPUs. Idempotent:
# installs what is missing, writes the config once, starts what is not running, and waits
# until the node takes jobs. Needs root (or sudo).
set -euo pipefail
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  $SUDO apt-get update -q && $SUDO apt-get install -y -q slurm-wlm munge
fi
node=$(hostname -s)
cpus=$(nproc)
conf=/etc/slurm/slurm.conf
if ! grep -q "^NodeName=$node " "$conf" 2>/dev/null; then
  $SUDO mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  $SUDO tee "$conf" >/dev/null <<CONF
# Written by deploy/slurm/local-cluster.sh: one node, this machine.
ClusterName=local
SlurmctldHost=$node
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=30
NodeName=$node CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
fi
if [ ! -s /etc/munge/munge.key ]; then
  $SUDO mkdir -p /etc/munge
  $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  $SUDO chown munge:munge /etc/munge/munge.key && $SUDO chmod 400 /etc/munge/munge.key
fi
if ! pgrep -x munged >/dev/null; then
  $SUDO mkdir -p /run/munge && $SUDO chown munge:munge /run/munge
  $SUDO runuser -u munge -- /usr/sbin/munged
fi
pgrep -x slurmctld >/dev/null || $SUDO slurmctld
pgrep -x slurmd >/dev/null || $SUDO slurmd
for _ in $(seq 1 60); do
  state=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
  case "$state" in
    idle*|mix*|alloc*) echo "slurm: node $node ($cpus CPUs) is $state"; exit 0 ;;
    down*|drain*) $SUDO scontrol update nodename="$node" state=resume || true ;;
  esac
  sleep 1
done
echo "slurm: node $node did not come up (state: ${state:-none}); see /var/log/slurm/" >&2
exit 1
