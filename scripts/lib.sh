# Shared by scripts/example and scripts/test: find Pythons and build virtual environments.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# find_python MINOR...: the first python3.MINOR found on PATH or under pyenv.
find_python() {
  local minor candidate
  for minor in "$@"; do
    for candidate in "python3.$minor" "$HOME"/.pyenv/versions/3."$minor".*/bin/python3."$minor"; do
      # A pyenv shim exists for every version but runs only the selected ones.
      if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "" >/dev/null 2>&1; then
        command -v "$candidate"
        return 0
      fi
    done
  done
  echo "No Python 3.$1 (or newer listed) found; install one (pyenv install 3.$1)." >&2
  return 1
}

# make_venv DIR PYTHON REQUIREMENT...: create DIR if needed and install into it.
# Re-installs only when the requirements changed since the last run.
make_venv() {
  local dir="$1" python="$2"
  shift 2
  local stamp="$dir/.installed" wanted
  wanted="$(printf '%s\n' "$@"; cat "$ROOT/pyproject.toml")"
  if [ ! -x "$dir/bin/python" ]; then
    "$python" -m venv "$dir"
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "Installing into $dir ..."
    rm -f "$stamp"
    if ! "$dir/bin/python" -m pip install --quiet --upgrade pip "$@" >"$dir/install.log" 2>&1; then
      cat "$dir/install.log" >&2
      echo "Installing into $dir failed." >&2
      return 1
    fi
    printf '%s' "$wanted" > "$stamp"
  fi
}

# The two environments every script shares (same requirements, so no script makes
# another reinstall): Django 5.2 with the docs tools, Django 6 with the dev tools.
venv_django52() {
  make_venv "$ROOT/.venvs/django52" "$(find_python 11 12 13)" -e ".[test,docs]" "Django>=5.2,<6.0" >&2
  echo "$ROOT/.venvs/django52"
}
venv_django6() {
  # Its mysqlclient (the mysql extra, for the MariaDB leg) builds from source.
  need_system_packages mariadb_config=libmariadb-dev pkg-config=pkg-config >&2
  make_venv "$ROOT/.venvs/django6" "$(find_python 12 13)" -e ".[test,test-celery,dev,e2e,mysql]" "Django>=6.0,<7.0" >&2
  echo "$ROOT/.venvs/django6"
}

# need_system_packages COMMAND=PACKAGE...: install Debian packages whose command is missing.
need_system_packages() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "Please install: ${missing[*]} (Debian/Ubuntu package names)." >&2
    return 1
  fi
  echo "Installing ${missing[*]} ..."
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# start_redis: make sure the local Redis answers on 127.0.0.1:6379 (the Celery load test's broker).
start_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "Redis does not answer on 127.0.0.1:6379." >&2
  return 1
}

# start_postgres: make sure the local PostgreSQL answers (trust auth on 127.0.0.1:5432).
start_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    return 0
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  fi
  for _ in $(seq 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    sleep 1
  done
  echo "PostgreSQL does not answer on 127.0.0.1:5432." >&2
  return 1
}

# start_mariadb: make sure the local MariaDB answers (root without a password on 127.0.0.1:3306)
# and knows the named time zones, which Django's date functions need there (CONVERT_TZ).
start_mariadb() {
  local sql=(mariadb --user=root --host=127.0.0.1 --port=3306 --batch --skip-column-names)
  if ! mariadb-admin --user=root --host=127.0.0.1 --port=3306 --silent ping >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/mariadbd ]; then
      mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
      start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    fi
    for _ in $(seq 30); do
      mariadb-admin --user=root --host=127.0.0.1 --port=3306 --silent ping >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  if ! "${sql[@]}" --execute "SELECT 1" >/dev/null 2>&1; then
    echo "MariaDB does not answer on 127.0.0.1:3306 (user root, no password)." >&2
    return 1
  fi
  if [ "$("${sql[@]}" --execute "SELECT COUNT(*) FROM mysql.time_zone_name")" = 0 ]; then
    echo "Loading the time zones into MariaDB ..."
    mariadb-tzinfo-to-sql /usr/share/zoneinfo 2>/dev/null | "${sql[@]}" mysql
  fi
}
