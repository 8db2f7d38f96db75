#!/usr/bin/env bash
# A throw-away MariaDB Galera cluster of two or three nodes, for the Galera suite.
#
#   scripts/galera-cluster.sh start DIR     # data, sockets, logs, pid files under DIR; writes DIR/nodes.env
#   scripts/galera-cluster.sh stop DIR      # stops the nodes (SIGKILL after 30 s), removes DIR and the network
#   scripts/galera-cluster.sh rejoin DIR N  # starts node N again after it died; waits until Synced
#   scripts/galera-cluster.sh cut DIR 3     # partitions node 3 off the cluster (see below)
#   scripts/galera-cluster.sh heal DIR 3    # ends the partition; node 3 rejoins by itself
#
# GALERA_NODES (2 or 3, default 2) picks the size. Node 1 bootstraps the cluster; the others join it
# by rsync state transfer.
# - Two nodes: node 1 has pc.weight=2, so when node 2 dies (the suite SIGKILLs it) node 1 keeps 2 of
#   3 votes and stays primary: two nodes of equal weight would lose quorum with either node.
# - Three nodes: equal weights, as a production cluster has; any two nodes are a majority.
#   Node 3 runs in a network namespace of its own when this machine allows one (root, `ip netns`,
#   `tc`): two veth pairs join it to the host, one for replication (Galera's group traffic, IST
#   and SST) and one for clients (SQL). `cut` puts a blackhole qdisc on both ends of the
#   replication pair: every packet between node 3 and the other nodes is silently dropped, as in a
#   real network partition, while the clients still reach node 3 and hear what a node outside the
#   primary component answers. Without namespaces all nodes share loopback, and `cut` falls back
#   to SIGSTOP (the node freezes; `heal` sends SIGCONT). GALERA_PARTITION=sigstop picks the fallback
#   even where namespaces work. DIR/partition-method says which was used ("netns" or "sigstop").
# Ports (env GALERA_PORT_BASE, default 23300): base+N SQL, base+10+N replication, base+20+N IST,
# base+30+N SST for node N. The namespace's addresses are in 198.18.0.0/15 (RFC 2544, reserved for
# network tests), one /24 per port base: 198.18.B.1-2 replication, 198.18.B.5-6 clients.
set -euo pipefail

usage="usage: galera-cluster.sh start|stop DIR | rejoin|cut|heal DIR N"
command=${1:?$usage}
dir=${2:?$usage}
base=${GALERA_PORT_BASE:-23300}
nodes=${GALERA_NODES:-2}
# Every command after `start` works on the cluster as it was started, whatever the environment says.
if [ "$command" != start ] && [ -f "$dir/nodes.env" ]; then
  nodes=$(sed -n 's/^GALERA_NODES=//p' "$dir/nodes.env")
  base=$(sed -n 's/^GALERA_PORT_BASE=//p' "$dir/nodes.env")
fi
provider=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}
case "$nodes" in 2 | 3) ;; *) echo "GALERA_NODES must be 2 or 3, got $nodes" >&2; exit 2 ;; esac
# rsync state transfer runs a daemon as the server's user; as root it would drop to nobody and
# could not write the joiner's data directory, so root runs the nodes as mysql.
run_as=$(id -un)
[ "$run_as" = root ] && id mysql >/dev/null 2>&1 && run_as=mysql

# Network namespace of node 3 (three-node clusters only), named after the port base so that two
# clusters on other port bases do not meet.
netns="tl-galera-$base"
subnet="198.18.$(((base / 100) % 256))"
host_repl="tlg${base}r" host_sql="tlg${base}c" # host ends of the veth pairs (<= 15 characters)

sql_port() { echo $((base + $1)); }
repl_port() { echo $((base + 10 + $1)); }
isolated() { [ -f "$dir/partition-method" ] && [ "$(cat "$dir/partition-method")" = netns ]; }

# Where node N is reached: by its peers (replication, IST, SST) and by clients (SQL).
peer_host() {
  if ! isolated; then echo 127.0.0.1; elif [ "$1" = 3 ]; then echo "$subnet.2"; else echo "$subnet.1"; fi
}
sql_host() { if isolated && [ "$1" = 3 ]; then echo "$subnet.6"; else echo 127.0.0.1; fi; }

# Whether node 3 can live in a namespace of its own here; the probe leaves nothing behind.
namespaces_work() {
  [ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v tc >/dev/null || return 1
  local probe="tl-galera-probe-$$" ok=1
  ip netns add "$probe" 2>/dev/null || return 1
  if ip link add "tlp$$a" type veth peer name "tlp$$b" 2>/dev/null; then
    tc qdisc add dev "tlp$$a" root blackhole 2>/dev/null && ok=0
    ip link del "tlp$$a" 2>/dev/null || true
  fi
  ip netns del "$probe" 2>/dev/null || true
  return $ok
}

network_up() {
  ip netns add "$netns"
  ip -n "$netns" link set lo up
  local host_end ns_end net
  for pair in "repl $host_repl 0" "sql $host_sql 4"; do
    read -r ns_end host_end net <<<"$pair"
    ip link add "$host_end" type veth peer name "$ns_end" netns "$netns"
    ip addr add "$subnet.$((net + 1))/30" dev "$host_end"
    ip link set "$host_end" up
    ip -n "$netns" addr add "$subnet.$((net + 2))/30" dev "$ns_end"
    ip -n "$netns" link set "$ns_end" up
  done
}

network_down() {
  ip link del "$host_repl" 2>/dev/null || true
  ip link del "$host_sql" 2>/dev/null || true
  ip netns del "$netns" 2>/dev/null || true
}

config() { # node
  local n=$1 weight=1 peers="" i
  [ "$nodes" = 2 ] && [ "$n" = 1 ] && weight=2
  for ((i = 1; i <= nodes; i++)); do peers="$peers${peers:+,}$(peer_host "$i"):$(repl_port "$i")"; done
  local me
  me=$(peer_host "$n")
  cat <<CNF
[mariadbd]
user=$run_as
datadir=$dir/node$n/data
socket=$dir/node$n/mysqld.sock
pid-file=$dir/node$n/mysqld.pid
log-error=$dir/node$n/error.log
bind-address=$(sql_host "$n")
port=$(sql_port "$n")
skip-name-resolve
innodb_buffer_pool_size=64M
innodb_log_file_size=16M
max_connections=200
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
wsrep_on=ON
wsrep_provider=$provider
wsrep_cluster_name=typeorm_locking_test
wsrep_cluster_address=gcomm://$peers
wsrep_node_name=node$n
wsrep_node_address=$me:$(repl_port "$n")
wsrep_provider_options="gmcast.listen_addr=tcp://$me:$(repl_port "$n");ist.recv_addr=$me:$((base + 20 + n));pc.weight=$weight;gcache.size=32M;evs.keepalive_period=PT1S;evs.inactive_check_period=PT1S;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S;evs.install_timeout=PT5S"
wsrep_sst_method=rsync
wsrep_sst_receive_address=$me:$((base + 30 + n))
CNF
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_synced() { # node seconds
  local i state
  for ((i = 0; i < $2 * 2; i++)); do
    state=$(mariadb --no-defaults -S "$dir/node$1/mysqld.sock" -uroot -N -e "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2 || true)
    if [ "$state" = "Synced" ]; then return 0; fi
    sleep 0.5
  done
  echo "galera node $1 did not reach Synced within $2 s (last state: ${state:-no answer}); its log:" >&2
  tail -n 40 "$dir/node$1/error.log" >&2 || true
  return 1
}

start_node() { # node extra-args...
  local n=$1 in_netns=()
  shift
  mkdir -p "$dir/node$n/data"
  chown -R "$run_as" "$dir" 2>/dev/null || true
  config "$n" >"$dir/node$n/my.cnf"
  isolated && [ "$n" = 3 ] && in_netns=(ip netns exec "$netns")
  "${in_netns[@]}" /usr/sbin/mariadbd --defaults-file="$dir/node$n/my.cnf" "$@" </dev/null >>"$dir/node$n/stdout.log" 2>&1 &
}

start() {
  if [ ! -f "$provider" ]; then
    echo "installing galera-4 (Debian package)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q galera-4 >&2 ||
      { echo "cannot install galera-4: apt-get failed" >&2; exit 1; }
  fi
  command -v rsync >/dev/null || { echo "rsync (Galera's state transfer) is missing: apt-get install rsync" >&2; exit 1; }
  mkdir -p "$dir/node1"
  # mktemp makes DIR private to its creator; the nodes' user must reach its data directories.
  chmod 755 "$dir"
  chown -R "$run_as" "$dir" 2>/dev/null || true
  printf 'GALERA_NODES=%s\nGALERA_PORT_BASE=%s\n' "$nodes" "$base" >"$dir/nodes.env"
  if [ "$nodes" = 3 ]; then
    if [ "${GALERA_PARTITION:-auto}" != sigstop ] && namespaces_work; then
      network_down # a namespace left by a run that was killed
      network_up
      echo netns >"$dir/partition-method"
    else
      [ "${GALERA_PARTITION:-auto}" = sigstop ] ||
        echo "no network namespace here (needs root, ip and tc): node 3 shares loopback and a partition is SIGSTOP" >&2
      echo sigstop >"$dir/partition-method"
    fi
  fi
  mariadb-install-db --no-defaults --datadir="$dir/node1/data" --user="$run_as" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/node1/install.log" 2>&1 ||
    { echo "mariadb-install-db failed:" >&2; tail -n 20 "$dir/node1/install.log" >&2; exit 1; }
  start_node 1 --wsrep-new-cluster
  wait_synced 1 60
  # Root over TCP with no password, as on the machine's own MariaDB; replicated by SST. Clients of
  # node 3 come from the host end of its client pair.
  mariadb --no-defaults -S "$dir/node1/mysqld.sock" -uroot -e "
    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
    CREATE USER IF NOT EXISTS 'root'@'$subnet.5' IDENTIFIED BY '';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'$subnet.5' WITH GRANT OPTION;
    CREATE DATABASE IF NOT EXISTS test;"
  local n summary="" env=""
  for ((n = 2; n <= nodes; n++)); do
    start_node "$n"
    wait_synced "$n" 90
  done
  for ((n = 1; n <= nodes; n++)); do
    summary="$summary node$n $(sql_host "$n"):$(sql_port "$n")"
    env="${env}GALERA_NODE${n}_HOST=$(sql_host "$n")"$'\n'"GALERA_NODE${n}_PORT=$(sql_port "$n")"$'\n'
  done
  printf 'GALERA_PARTITION_METHOD=%s\n%s' "$(cat "$dir/partition-method" 2>/dev/null || echo none)" "$env" >>"$dir/nodes.env"
  echo "galera cluster up:$summary ($dir)"
}

stop() {
  local n pidfile i
  for n in 1 2 3; do
    pidfile="$dir/node$n/mysqld.pid"
    # A node stopped by `cut` must run again to hear SIGTERM.
    alive "$pidfile" && kill -CONT "$(cat "$pidfile")" 2>/dev/null && kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
  done
  for n in 1 2 3; do
    pidfile="$dir/node$n/mysqld.pid"
    for ((i = 0; i < 60; i++)); do alive "$pidfile" || break; sleep 0.5; done
    alive "$pidfile" && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
  done
  # A node started but not yet writing its pid file would survive the loop above.
  pkill -KILL -f -- "--defaults-file=$dir/node" 2>/dev/null || true
  isolated && network_down
  rm -rf "$dir"
}

rejoin() { # node
  alive "$dir/node$1/mysqld.pid" && { echo "node $1 is running" >&2; return 1; }
  start_node "$1"
  wait_synced "$1" 90
}

cut_off() { # node
  [ "$1" = 3 ] && [ "$nodes" = 3 ] || { echo "only node 3 of a three-node cluster can be cut off" >&2; return 2; }
  if isolated; then
    tc qdisc add dev "$host_repl" root blackhole
    ip netns exec "$netns" tc qdisc add dev repl root blackhole
  else
    kill -STOP "$(cat "$dir/node3/mysqld.pid")"
  fi
}

heal_node() { # node
  [ "$1" = 3 ] && [ "$nodes" = 3 ] || { echo "only node 3 of a three-node cluster can be cut off" >&2; return 2; }
  if isolated; then
    tc qdisc del dev "$host_repl" root 2>/dev/null || true
    ip netns exec "$netns" tc qdisc del dev repl root 2>/dev/null || true
  else
    kill -CONT "$(cat "$dir/node3/mysqld.pid")"
  fi
}

case "$command" in
  start) start ;;
  stop) stop ;;
  rejoin) rejoin "${3:?$usage}" ;;
  cut) cut_off "${3:?$usage}" ;;
  heal) heal_node "${3:?$usage}" ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
