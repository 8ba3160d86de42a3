#!/bin/sh
# A stand-in for the 1C:Enterprise `rac` client: no 1C server cluster can run in a test, so this
# script answers rac's commands from captured-format files. Called as
#   fake_rac.sh CASE_DIR LOG_FILE [rac's own arguments...]
# it prints CASE_DIR/<command>.txt (the command's words joined by '-', e.g. session-list, and
# session-list-licenses for `session list --licenses`), writes
# <command>.err to stderr and exits with <command>.exit (default 0), after sleeping
# <command>.sleep seconds. A file missing from a case comes from the case named in its `base`.
# With a CASE_DIR/password every command but `cluster list` needs a matching --cluster-pwd, as a
# cluster with an administrator does. "{args}" in a .err file stands for the arguments, as rac
# quotes them when it rejects one. Each call's arguments go to LOG_FILE, tab-separated.
case_dir=$1
log=$2
shift 2

tab=$(printf '\t')
line=
for a in "$@"; do line="$line${line:+$tab}$a"; done
printf '%s\n' "$line" >>"$log"

# rac [options] host:port mode command ...: the address comes before the mode.
addr=
command=
password=
for a in "$@"; do
  case $a in
    --cluster-pwd=*) password=${a#--cluster-pwd=} ;;
    --licenses) command="$command-licenses" ;;  # session list --licenses: a command of its own
    --*) ;;
    *) if [ -z "$addr" ]; then addr=$a; else command="$command${command:+-}$a"; fi ;;
  esac
done
case $addr in
  *:*) ;;
  *) printf 'Ошибка разбора параметра: %s\n' "$*" >&2; exit 255 ;;
esac

find_file() {
  d=$case_dir
  while :; do
    if [ -e "$d/$1" ]; then printf '%s' "$d/$1"; return 0; fi
    [ -e "$d/base" ] || return 1
    d=$(dirname "$d")/$(cat "$d/base")
  done
}

# CASE_DIR/unreachable: ras addresses (one a line) that answer as a ras that is down.
if f=$(find_file unreachable) && grep -qx "$addr" "$f"; then
  printf 'Ошибка соединения с сервером администрирования (сервер: %s)\nConnection refused\n' "$addr" >&2
  exit 255
fi
if f=$(find_file "$command.sleep"); then sleep "$(cat "$f")"; fi
if [ "$command" != cluster-list ] && f=$(find_file password); then
  if [ "$password" != "$(cat "$f")" ]; then
    printf 'Ошибка операции администрирования\nАдминистратор кластера не аутентифицирован\n' >&2
    exit 255
  fi
fi
out=$(find_file "$command.txt") || out=
err=$(find_file "$command.err") || err=
if [ -z "$out" ] && [ -z "$err" ]; then
  printf 'fake rac: no %s.txt in %s\n' "$command" "$case_dir" >&2
  exit 254
fi
[ -n "$out" ] && cat "$out"
if [ -n "$err" ]; then
  text=$(cat "$err")
  case $text in
    *"{args}"*) text="${text%%\{args\}*}$*${text#*\{args\}}" ;;
  esac
  printf '%s\n' "$text" >&2
fi
if f=$(find_file "$command.exit"); then exit "$(cat "$f")"; fi
exit 0
