#!/usr/bin/env bash
# A throw-away two-node MariaDB Galera cluster on loopback, for the Galera suite.
#
#   scripts/galera-cluster.sh start DIR   # data, sockets, logs and pid files under DIR
#   scripts/galera-cluster.sh stop DIR    # stops both nodes (SIGKILL after 30 s) and removes DIR
#   scripts/galera-cluster.sh rejoin DIR N  # starts node N again after it died; waits until Synced
#
# Node 1 bootstraps the cluster; node 2 joins it by rsync state transfer. Node 1 has pc.weight=2,
# so when node 2 dies (the suite SIGKILLs it) node 1 keeps 2 of 3 votes and stays primary: a
# two-node cluster with equal weights would lose quorum with either node and refuse all writes.
# Ports (env GALERA_PORT_BASE, default 23300): base+1/base+2 SQL, base+11/base+12 replication,
# base+21/base+22 IST, base+31/base+32 SST.
set -euo pipefail

command=${1:?usage: galera-cluster.sh start|stop|rejoin DIR [N]}
dir=${2:?usage: galera-cluster.sh start|stop DIR}
base=${GALERA_PORT_BASE:-23300}
provider=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}
# rsync state transfer runs a daemon as the server's user; as root it would drop to nobody and
# could not write the joiner's data directory, so root runs the nodes as mysql.
run_as=$(id -un)
[ "$run_as" = root ] && id mysql >/dev/null 2>&1 && run_as=mysql

sql_port() { echo $((base + $1)); }
repl_port() { echo $((base + 10 + $1)); }

config() { # node
  local n=$1 peers="gcomm://127.0.0.1:$(repl_port 1),127.0.0.1:$(repl_port 2)" weight=1
  [ "$n" = 1 ] && weight=2
  cat <<EOF
[mariadbd]
user=$run_as
datadir=$dir/node$n/data
socket=$dir/node$n/mysqld.sock
pid-file=$dir/node$n/mysqld.pid
log-error=$dir/node$n/error.log
bind-address=127.0.0.1
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
wsrep_cluster_address=$peers
wsrep_node_name=node$n
wsrep_node_address=127.0.0.1:$(repl_port "$n")
wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:$(repl_port "$n");ist.recv_addr=127.0.0.1:$((base + 20 + n));pc.weight=$weight;gcache.size=32M;evs.keepalive_period=PT1S;evs.inactive_check_period=PT1S;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S;evs.install_timeout=PT5S"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:$((base + 30 + n))
EOF
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
  local n=$1
  shift
  mkdir -p "$dir/node$n/data"
  chown -R "$run_as" "$dir" 2>/dev/null || true
  config "$n" >"$dir/node$n/my.cnf"
  /usr/sbin/mariadbd --defaults-file="$dir/node$n/my.cnf" "$@" </dev/null >>"$dir/node$n/stdout.log" 2>&1 &
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
  mariadb-install-db --no-defaults --datadir="$dir/node1/data" --user="$run_as" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/node1/install.log" 2>&1 ||
    { echo "mariadb-install-db failed:" >&2; tail -n 20 "$dir/node1/install.log" >&2; exit 1; }
  start_node 1 --wsrep-new-cluster
  wait_synced 1 60
  # Root over TCP with no password, as on the machine's own MariaDB; replicated to node 2 by SST.
  mariadb --no-defaults -S "$dir/node1/mysqld.sock" -uroot -e "
    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
    CREATE DATABASE IF NOT EXISTS test;"
  start_node 2
  wait_synced 2 90
  echo "galera cluster up: node1 127.0.0.1:$(sql_port 1), node2 127.0.0.1:$(sql_port 2) ($dir)"
}

stop() {
  local n pidfile i
  for n in 1 2; do
    pidfile="$dir/node$n/mysqld.pid"
    alive "$pidfile" && kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
  done
  for n in 1 2; do
    pidfile="$dir/node$n/mysqld.pid"
    for ((i = 0; i < 60; i++)); do alive "$pidfile" || break; sleep 0.5; done
    alive "$pidfile" && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
  done
  # A node started but not yet writing its pid file would survive the loop above.
  pkill -KILL -f -- "--defaults-file=$dir/node" 2>/dev/null || true
  rm -rf "$dir"
}

rejoin() { # node
  alive "$dir/node$1/mysqld.pid" && { echo "node $1 is running" >&2; return 1; }
  start_node "$1"
  wait_synced "$1" 90
}

case "$command" in
  start) start ;;
  rejoin) rejoin "${3:?usage: galera-cluster.sh rejoin DIR N}" ;;
  stop) stop ;;
  *) echo "usage: galera-cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
