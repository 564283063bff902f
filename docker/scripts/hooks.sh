# shellcheck shell=sh
# /usr/local/lib/rwsgi/hooks.sh: what rwsgi-build and rwsgi-start share, sourced by
# both from the application directory (/app). Each sets $me (its name) first.
#
# An application keeps its image conventions in .rwsgi/; mod_wsgi-docker's
# .whiskey/ is read in its place, so that such a project moves unchanged:
#   action_hooks/pre-build, build   run by rwsgi-build, before and after pip
#   action_hooks/deploy-env         run by rwsgi-start; may add, change or remove
#                                   files in $RWSGI_ENVDIR (also $WHISKEY_ENVDIR),
#                                   which become the environment of what follows
#   action_hooks/deploy             run by rwsgi-start before the server
#   action_hooks/start              run by rwsgi-start instead of the server, with
#                                   the server's options as its arguments
#   server_args                     more server options, environment variables
#                                   expanded (as in a shell here-document)
#   user_vars/NAME                  environment variable NAME, the file's content
#   wheelhouse/                     where pip looks for packages first (find-links)

: "${me:=rwsgi}"

# The convention directory: .rwsgi, else .whiskey (with a one-line notice).
conf=.rwsgi
if [ -d .whiskey ]; then
    if [ -d .rwsgi ]; then
        echo "$me: both .rwsgi/ and .whiskey/ exist; using .rwsgi/ and ignoring .whiskey/" >&2
    else
        conf=.whiskey
        echo "$me: using mod_wsgi-docker's .whiskey/ conventions as rwsgi's .rwsgi/" >&2
        WHISKEY_RUNTIME=docker WHISKEY_HOMEDIR=$PWD
        export WHISKEY_RUNTIME WHISKEY_HOMEDIR
    fi
fi

# exec_hook NAME [ARG]...: replaces the shell by the hook $conf/action_hooks/NAME.
# One without the executable bit (a checkout that lost it) runs with the
# interpreter of its #! line, else with sh.
exec_hook() {
    hook=$conf/action_hooks/$1
    shift
    [ -x "$hook" ] && exec "./$hook" "$@"
    first=
    IFS= read -r first <"$hook" || true
    # The #! line's interpreter and its optional argument: split on purpose.
    # shellcheck disable=SC2086
    case $first in
        '#!'*) exec ${first#??} "$hook" "$@" ;;
        *) exec sh "$hook" "$@" ;;
    esac
}

# run_hook NAME: runs the hook if the application has it; its failure is fatal.
run_hook() {
    [ -e "$conf/action_hooks/$1" ] || return 0
    echo "$me: running $conf/action_hooks/$1" >&2
    (exec_hook "$1")
}

# export_vars DIR: each file DIR/NAME sets the environment variable NAME to the
# file's content (without its final newlines); $exported lists the names.
export_vars() {
    exported=
    for file in "$1"/*; do
        [ -f "$file" ] || continue
        name=${file##*/}
        case $name in
            '' | [0-9]* | *[!A-Za-z0-9_]*)
                echo "$me: ignoring $file: not an environment variable name" >&2
                continue
                ;;
        esac
        value=$(cat "$file")
        export "$name=$value"
        exported="$exported $name"
    done
}
