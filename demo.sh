#!/usr/bin/env bash
# HA Notepad: one command for the demo, the walkthrough and the tests.
#   ./demo.sh [--dir DIR]          the live demo: a 3-node cluster running HA Notepad, laid out
#                                  in tmux with a narrator pane (creates .venv on its first run)
#   ./demo.sh --auto [--dir DIR]   the same story without tmux or a keyboard; exit 1 on failure
#   ./demo.sh stop [--dir DIR]     stop everything the demo started
#   ./demo.sh reset [--dir DIR]    stop, then remove the demo cluster
#   ./demo.sh test [PYTEST ARGS]   run the whole test suite
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
venv="$here/.venv"
session="hanotepad-demo"
nodes=(node1 node2 node3)
marker=".hanotepad-demo"  # in every demo directory: stop and reset touch nothing else

bootstrap() {
    # Reuse the venv once its install has completed; a half-made venv is rebuilt.
    if [[ -x "$venv/bin/python" && -f "$venv/.installed" && "$venv/.installed" -nt pyproject.toml ]]; then
        return
    fi
    echo "demo.sh: setting up $venv (first run only)..." >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e '.[test]'
    touch "$venv/.installed"
}

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }

die() { echo "demo.sh: $*" >&2; exit 2; }

hac() { "$venv/bin/python" -m cluster "$@" --store "$store"; }

# The demo directory whose walkthrough the tmux session shows ("?" if it does not say), or
# nothing when there is no session. One session name for all demos: the one a presenter knows.
tmux_owner() {
    command -v tmux >/dev/null 2>&1 && tmux has-session -t "=$session" 2>/dev/null || return 0
    local owner
    owner="$(tmux show-options -v -t "=$session:" @hanotepad_dir 2>/dev/null || true)"
    echo "${owner:-?}"
}

# Stop what a previous demo in this directory started: the tmux session, then every node's
# whole process tree (recorded pids, checked to still be ours), then anything left that names
# the demo directory.
stop_demo() {
    local owner
    owner="$(tmux_owner)"
    if [[ $owner == "$dir" || $owner == "?" ]]; then
        tmux kill-session -t "=$session"
    fi
    [[ -d "$dir" ]] || return 0
    "$venv/bin/python" - "$dir" <<'PY'
import sys
from pathlib import Path

import psutil

from cluster.processes import kill_tree, wait_gone

root = Path(sys.argv[1]).resolve()
pids = root / "pids"


def named(part: str) -> bool:
    """Names the demo directory or a path inside it (not /tmp/d10 for /tmp/d1)."""
    return part == str(root) or f"{root}/" in part


if pids.exists():
    for line in pids.read_text().split():
        try:
            proc = psutil.Process(int(line))
            if any(named(part) for part in proc.cmdline()):
                kill_tree(proc.pid)
        except (ValueError, psutil.Error):
            pass
    pids.unlink()
left = []
me = psutil.Process()
spared = {me.pid, *(p.pid for p in me.parents())}  # this script and whoever runs it
for proc in psutil.process_iter(["cmdline"]):
    try:
        if proc.pid not in spared and any(named(part) for part in proc.info["cmdline"] or []):
            kill_tree(proc.pid)
            left.append(proc)
    except psutil.Error:
        pass
wait_gone(left, 5)
PY
}

start_cluster() {
    stop_demo
    rm -rf "$store"
    mkdir -p "$dir"
    touch "$dir/$marker"
    hac init --name demo >/dev/null
    : > "$dir/pids"
    for n in "${nodes[@]}"; do
        hac node start "$n" --local-dir "$dir/$n" --detach | sed 's/^/  /'
        "$venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['value']['pid'])" \
            "$store/status/nodes/$n.json" >> "$dir/pids"
    done
    hac notepad --wait 30 | sed 's/^/  /'
}

open_tmux() {
    local py="$venv/bin/python" s="$store"
    local narrator="$py -m cluster.demo --store '$s' --dir '$dir'"
    local attach="$py -m cluster attach notepad --store '$s'"
    local status="$py -m cluster status --watch --store '$s'"
    if "$py" -c "import cluster.admin" 2>/dev/null; then
        status="$py -m cluster admin --store '$s'"
    fi
    tmux new-session -d -s "$session" -x 220 -y 60 -n walkthrough "$narrator; bash"
    tmux set-option -t "$session" remain-on-exit on >/dev/null
    tmux set-option -t "=$session:" @hanotepad_dir "$dir"
    tmux split-window -t "$session:0.0" -h -p 62 "$attach; bash"
    tmux split-window -t "$session:0.0" -v -p 50 "$status; bash"
    tmux split-window -t "$session:0.2" -v -p 30 "tail -F '$dir/node1/node.log'"
    tmux split-window -t "$session:0.3" -h -p 66 "tail -F '$dir/node2/node.log'"
    tmux split-window -t "$session:0.4" -h -p 50 "tail -F '$dir/node3/node.log'"
    tmux select-pane -t "$session:0.0" -T narrator
    tmux select-pane -t "$session:0.0"
    echo "demo.sh: tmux session '$session' is ready"
}

attach_tmux() {
    if [[ -t 1 && -z "${DEMO_NO_ATTACH:-}" ]]; then
        if [[ -n "${TMUX:-}" ]]; then
            tmux switch-client -t "$session"
        else
            tmux attach -t "$session"
        fi
    else
        echo "  attach to it with: tmux attach -t $session"
    fi
}

print_terminals() {
    cat <<EOF
tmux is not installed, so here are the panes as commands: run each in a terminal of its own.
(Install tmux for the one-window walkthrough: sudo apt-get install tmux, or brew install tmux.)

  narrator:  $venv/bin/python -m cluster.demo --store $store --dir $dir
  attach:    $venv/bin/hacluster attach notepad --store $store
  status:    $venv/bin/hacluster status --watch --store $store
  node logs: tail -F $dir/node1/node.log   (and node2, node3)

'./demo.sh stop' ends the demo.
EOF
}

cmd="demo"
dir="$here/demo-cluster"
args=()
while (($#)); do
    case "$1" in
        test|stop|reset) cmd="$1"; shift; [[ $cmd == test ]] && { args=("$@"); break; } ;;
        --auto) cmd="auto"; shift ;;
        --dir) [[ $# -ge 2 ]] || die "--dir needs a directory"; dir="$2"; shift 2 ;;
        --dir=*) dir="${1#--dir=}"; shift ;;
        -h|--help|help) usage; exit 0 ;;
        *) die "unknown argument '$1'; try './demo.sh --help'" ;;
    esac
done
if [[ $cmd != test ]]; then
    # stop, reset and a new demo kill processes naming the directory and delete in it: refuse
    # a directory that holds something other than a demo (a typo such as --dir ~ or --dir /tmp).
    if [[ -d "$dir" && ! -e "$dir/$marker" && ! -e "$dir/store/cluster.json" ]] \
            && [[ -n "$(ls -A "$dir" 2>/dev/null)" ]]; then
        die "$dir is not a demo directory and not empty; pass a new or empty one with --dir"
    fi
    mkdir -p "$dir" 2>/dev/null || die "cannot create the demo directory $dir"
    dir="$(cd "$dir" && pwd)"
fi
store="$dir/store"

case "$cmd" in
    test)
        bootstrap
        export PATH="$venv/bin:$PATH"
        "$venv/bin/ruff" check --quiet .
        exec "$venv/bin/python" -m pytest "${args[@]}"
        ;;
    stop)
        bootstrap
        stop_demo
        echo "demo.sh: stopped"
        ;;
    reset)
        bootstrap
        stop_demo
        rm -rf "$dir"
        echo "demo.sh: removed $dir"
        ;;
    auto)
        bootstrap
        trap stop_demo EXIT  # also after ctrl+c or a failed start: nothing is left running
        echo "demo.sh: starting a 3-node cluster in $dir"
        start_cluster
        "$venv/bin/python" -m cluster.demo --store "$store" --dir "$dir" --auto
        ;;
    demo)
        bootstrap
        owner="$(tmux_owner)"
        if [[ -n $owner && $owner != "$dir" && $owner != "?" ]]; then
            die "the tmux session '$session' shows the demo in $owner; stop it first:" \
                "./demo.sh stop --dir $owner"
        fi
        trap stop_demo EXIT  # a start that fails half way (or ctrl+c) leaves nothing running
        echo "demo.sh: starting a 3-node cluster in $dir"
        start_cluster
        if command -v tmux >/dev/null 2>&1; then
            open_tmux
            trap - EXIT  # from here on the demo runs until './demo.sh stop'
            attach_tmux
        else
            print_terminals
            trap - EXIT
        fi
        ;;
esac
