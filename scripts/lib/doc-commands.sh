# Sourced inside scripts/check-package's clean root: runs docs/deploy.md's command blocks
# as written. A block is the ```sh fence after a `<!-- check-package: NAME -->` line. The
# root has no init, so `systemctl start` (and `enable --now`) run the unit's ExecStart
# the way systemd would: as its User, with its EnvironmentFiles read by systemd's own
# parser (the environment.d generator shares it with EnvironmentFile=), `%i` filled in;
# `daemon-reload` is a no-op; `journalctl -u UNIT` prints what that run logged; `editor`
# makes the edit the doc asks for (CHECK_EDITS: FILE=sed-expression lines).

DOC=${DOC:-/srv/check/deploy.md}
CHECK_LOGS=${CHECK_LOGS:-/srv/check/units}
mkdir -p "$CHECK_LOGS"

# The text of the N-th (default first) ```sh block after the marker NAME.
doc_block() {
  awk -v name="$1" -v n="${2:-1}" '
    $0 == "<!-- check-package: " name " -->" { armed = 1; next }
    armed && /^```sh$/ { inside = 1; block++; next }
    inside && /^```$/ { inside = 0; if (block == n) exit; next }
    inside && block == n { print }
  ' "$DOC"
}

# Stops what start_unit started in the background for units matching GLOB (SIGTERM,
# then waits, as systemctl stop does).
stop_units() {
  local f pid
  for f in "$CHECK_LOGS"/$1.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$f"
  done
}

# Runs block NAME with bash -e, failing loudly with the block's text.
run_block() {
  local text
  text=$(doc_block "$@")
  [ -n "$text" ] || { echo "deploy.md has no block marked $1" >&2; return 1; }
  echo "-- deploy.md, $1:" >&2
  sed 's/^/   | /' <<<"$text" >&2
  if ! (set -e; eval "$text"); then
    echo "deploy.md's block $1 failed" >&2
    return 1
  fi
}

# NAME=VALUE lines of the given env files, merged in order, as systemd reads them.
systemd_env() {
  local dir=/etc/environment.d n=0 f
  rm -rf "$dir" && mkdir -p "$dir"
  for f in "$@"; do
    n=$((n + 1))
    cp "$f" "$dir/$((10 + n))-check.conf"
  done
  env -i /usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator
  rm -rf "$dir"
}

# The value of KEY in `systemd_env` output on stdin, unquoted as a shell would.
env_value() {
  local line
  line=$(grep "^$1=" || true)
  [ -n "$line" ] || return 1
  eval "printf '%s\n' ${line#*=}"
}

editor() {
  local edit
  while IFS= read -r edit; do
    [ "${edit%%=*}" = "$1" ] && sed -i "${edit#*=}" "$1"
  done <<<"${CHECK_EDITS:-}"
  return 0
}

journalctl() {
  [ "$1" = -u ] || { echo "journalctl: only -u UNIT here" >&2; return 2; }
  cat "$CHECK_LOGS/$2.log"
}

# The unit file's value of KEY (each line, for keys that repeat), `%i` filled in.
unit_values() {
  local unit=$1 key=$2 template instance
  template=$unit
  instance=
  if [[ "$unit" == *@* ]]; then
    instance=${unit#*@}
    instance=${instance%.service}
    template="${unit%%@*}@.service"
  fi
  sed -n "s/^$key=//p" "/lib/systemd/system/$template" | sed "s/%i/$instance/g"
}

start_unit() {
  local unit=$1 files=() vars=() line exec_start type
  [[ "$unit" == *.service ]] || unit=$unit.service
  while IFS= read -r line; do files+=("$line"); done < <(unit_values "$unit" EnvironmentFile)
  while IFS= read -r line; do
    eval "vars+=(${line%%=*}=${line#*=})"
  done < <(systemd_env "${files[@]}")
  exec_start=$(unit_values "$unit" ExecStart)
  type=$(unit_values "$unit" Type)
  # Our units run as camhd-grid (hardening.conf), others (stunnel@) as root.
  local user=root home=/root
  if [[ "$unit" == camhd-grid-* ]]; then user=camhd-grid home=/var/lib/camhd-grid; fi
  local as_user=(setpriv --reuid=$user --regid=$user --init-groups --
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=$home "${vars[@]}")
  local log=$CHECK_LOGS/${unit%.service}.log
  if [ -n "${CHECK_NO_START:-}" ]; then
    echo "   (systemctl start $unit: not here, no server yet)" >&2
    return 0
  fi
  echo "   (systemctl start $unit: $exec_start as $user)" >&2
  if [ "$type" = oneshot ]; then
    (cd "$home" && "${as_user[@]}" $exec_start) >"$log" 2>&1 \
      || { echo "$unit failed:" >&2; cat "$log" >&2; return 1; }
  else
    (cd "$home" && exec "${as_user[@]}" $exec_start) >"$log" 2>&1 &
    local pid=$!
    echo $pid >"$CHECK_LOGS/${unit%.service}.pid"
    # systemd stops a simple service whose main process exits (a daemon that forks away).
    sleep 1
    if ! kill -0 $pid 2>/dev/null; then
      echo "$unit: its main process exited at once; systemd would stop the service:" >&2
      cat "$log" >&2
      return 1
    fi
  fi
}

systemctl() {
  local now= units=() verb=$1
  shift
  for a in "$@"; do
    case $a in
      --now) now=1 ;;
      *) units+=("$a") ;;
    esac
  done
  case $verb in
    daemon-reload) return 0 ;;
    start) for u in "${units[@]}"; do start_unit "$u"; done ;;
    restart)
      # What runs now of the units named (a glob restarts every running match).
      local running=() f
      for u in "${units[@]}"; do
        for f in "$CHECK_LOGS"/${u%.service}.pid; do
          [ -e "$f" ] && running+=("$(basename "$f" .pid)")
        done
        [[ "$u" == *'*'* ]] || [ ${#running[@]} -gt 0 ] || running+=("${u%.service}")
      done
      for u in "${running[@]}"; do
        stop_units "$u"
        start_unit "$u"
      done
      ;;
    enable)
      command systemctl enable "${units[@]}" 2>/dev/null
      if [ -n "$now" ]; then
        for u in "${units[@]}"; do
          # A timer's first run is the doc's next `systemctl start`.
          [[ "$u" == *.timer ]] || start_unit "$u"
        done
      fi
      ;;
    *) command systemctl "$verb" "$@" ;;
  esac
}
