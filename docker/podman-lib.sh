# shellcheck shell=bash
# docker/podman-lib.sh: podman and Debian base images on machines without a
# container registry (see ../shared/CONTAINERS.md). Sourced by docker/test-images
# and tests/run-pythons, which call podman_setup WORKDIR first.
#
#   pm ARGS...            podman with the vfs storage driver
#   pm_run ARGS...        the same with an OCI runtime that sets no rlimits
#   pm_build ARGS...      podman build as docker build does (docker format, host CAs)
#   python_suite X.Y      the Debian suite whose archive has Python X.Y
#   debian_image TAG SUITE PACKAGES [X.Y]
#                         a local image of a debootstrapped SUITE with PACKAGES
#                         (comma-separated), made once and kept as TAG-HASH; with
#                         X.Y, `python3` is that Python. Prints the image name.
#   python_base_image X.Y the base for the images of Python X.Y (debian_image)
#   python_dev_image X.Y  that base with gcc and libpythonX.Y-dev, for building and
#                         testing the worker (kept as a local tag too)

# Debian's archive carries these CPython versions (checked with apt in each suite).
python_suite() {
    case $1 in
        3.11) echo bookworm ;;
        3.13) echo trixie ;;
        3.14 | 3.15) echo sid ;;
        *) return 1 ;;
    esac
}

podman_setup() { # podman_setup WORKDIR
    local workdir=$1 tool missing=()
    for tool in podman buildah debootstrap runc curl ps; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        missing=("${missing[@]/#ps/procps}")
        echo "podman-lib: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # The default OCI runtime cannot set resource limits on these machines: a
    # wrapper drops them from the container spec (as ../shared/tools/runc-no-rlimits).
    podman_runtime=$workdir/runc-no-rlimits
    cat >"$podman_runtime" <<'EOF'
#!/bin/bash
set -euo pipefail
bundle=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[$i]} in
        --bundle | -b) bundle=${args[$((i + 1))]} ;;
        --bundle=*) bundle=${args[$i]#--bundle=} ;;
    esac
done
if [[ -n $bundle && -f $bundle/config.json ]]; then
    python3 - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    spec = json.load(f)
spec.get("process", {}).pop("rlimits", None)
with open(path, "w") as f:
    json.dump(spec, f)
PY
fi
exec runc "$@"
EOF
    chmod +x "$podman_runtime"
}

pm() { podman --storage-driver vfs "$@"; }
pm_run() { podman --storage-driver vfs --runtime "$podman_runtime" "$@"; }
# Docker's image format, as docker build makes: podman's default (OCI) has no
# ONBUILD. The host's CA bundle lets pip and cargo inside the build trust the same
# certificates as the host.
pm_build() {
    pm build --format docker --isolation chroot -v /etc/ssl/certs:/etc/ssl/certs:ro "$@"
}

debian_image() { # debian_image TAG SUITE PACKAGES [X.Y]
    local tag=$1 suite=$2 packages=$3 python=${4:-} image mirror rootfs old
    image=$tag-$(printf '%s %s %s 2' "$suite" "$packages" "$python" | sha256sum | cut -c1-12)
    if [[ ${RWSGI_TEST_REBUILD_BASE:-0} != 1 ]] && pm image exists "$image"; then
        echo "$image"
        return
    fi
    mirror=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    if [[ -z $mirror ]]; then
        echo "podman-lib: no Debian mirror in /etc/apt/sources.list.d/debian.sources" >&2
        return 1
    fi
    rootfs=$(mktemp -d /tmp/rwsgi-rootfs.XXXXXX)
    chmod 0755 "$rootfs" # the image's /, which every user must be able to enter
    echo "podman-lib: debootstrap $suite ($packages)" >&2
    if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
        >"$rootfs.log" 2>&1; then
        tail -n 20 "$rootfs.log" >&2
        rm -rf "$rootfs" "$rootfs.log"
        return 1
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/lib/apt/lists/* "$rootfs.log"
    # Only for these test bases: a moving suite's Release file (sid's) is valid for
    # a week, and an archive mirror may be older than that on this machine's clock;
    # apt-get update in the builds would refuse it.
    echo 'Acquire::Check-Valid-Until "false";' >"$rootfs/etc/apt/apt.conf.d/99rwsgi-test-valid-until"
    # A suite's python3 may be another version than the one wanted (sid's 3.15).
    if [[ -n $python && $(readlink -f "$rootfs/usr/bin/python3" 2>/dev/null) != */python$python ]]; then
        ln -sf "/usr/bin/python$python" "$rootfs/usr/local/bin/python3"
    fi
    old=$(pm image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    tar -C "$rootfs" -c . | pm import -q \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$image" >/dev/null
    [[ -z $old ]] || pm rmi "$old" >/dev/null 2>&1 || true
    rm -rf "$rootfs"
    echo "$image"
}

python_base_image() { # python_base_image X.Y
    local suite
    suite=$(python_suite "$1") || { echo "podman-lib: no Debian suite known to carry Python $1" >&2; return 1; }
    # With the suite's own python3 (bookworm's python3.11-venv does not configure
    # without it); `python3` is made X.Y where that is another version (sid's 3.15).
    debian_image localhost/rwsgi-test-base:python"$1" "$suite" \
        "python3,python3-venv,python$1,python$1-venv,libpython$1,ca-certificates" "$1"
}

python_dev_image() { # python_dev_image X.Y
    local base image dir
    base=$(python_base_image "$1") || return 1
    image=localhost/rwsgi-test-dev:python$1-${base##*-}
    if [[ ${RWSGI_TEST_REBUILD_BASE:-0} != 1 ]] && pm image exists "$image"; then
        echo "$image"
        return
    fi
    dir=$(mktemp -d /tmp/rwsgi-dev-image.XXXXXX)
    echo "podman-lib: making $image (gcc, libpython$1-dev, curl)" >&2
    printf '%s\n' "FROM $base" \
        "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gcc libc6-dev libpython$1-dev curl && rm -rf /var/lib/apt/lists/*" \
        >"$dir/Containerfile"
    if ! pm_build -t "$image" -f "$dir/Containerfile" "$dir" >"$dir/log" 2>&1; then
        tail -n 20 "$dir/log" >&2
        rm -rf "$dir"
        return 1
    fi
    rm -rf "$dir"
    echo "$image"
}
