#!/usr/bin/env bash
# Build kind and a kind node image here, with no container registry: every
# binary from its pinned Go module (hack/versions.env), the node's root
# filesystem from Debian (debootstrap), set up the way kind's own base image
# is (its files ship inside the kind module: images/base/files), and the
# control-plane images built from the same binaries and imported into the
# node's containerd store, tagged as `kubeadm config images list` names them.
#   hack/kind-node-image.sh          build what is missing; print the node image
#   hack/kind-node-image.sh image    print the node image name
#   hack/kind-node-image.sh kind     build kind if missing; print its path
#   hack/kind-node-image.sh tools    build the Go/C tools only; print their folder
# Everything is cached: the binaries under the modeldeploy cache, the images
# in podman's store (named by versions and recipe revision).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

cache_root=${MODELDEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy}
tools="$cache_root/bin/kind-$KIND_VERSION-containerd-$CONTAINERD_VERSION-crictl-$CRICTL_VERSION-coredns-$COREDNS_VERSION-pause-$PAUSE_VERSION"
recipe="$KUBERNETES_VERSION-r$KIND_NODE_RECIPE"
node_image="localhost/modeldeploy/kind-node:$recipe"
base_image="localhost/modeldeploy/kind-base:$recipe"
mkdir -p "$tools"

log() { printf '[kind-node-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Whatever a build leaves behind goes on exit, also on failure or Ctrl-C.
leftover_paths=()
leftover_containers=()
cleanup() {
  for c in "${leftover_containers[@]}"; do podman rm -f "$c" >/dev/null 2>&1 || true; done
  for p in "${leftover_paths[@]}"; do rm -rf "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# go_install NAME PACKAGE@VERSION [GO BUILD ARGS...]: a static binary into the cache.
go_install() {
  local name=$1 pkg=$2
  shift 2
  [[ -x "$tools/$name" ]] && return
  log "$name: building $pkg"
  local start=$SECONDS tmp
  tmp=$(mktemp -d)
  leftover_paths+=("$tmp")
  GOBIN=$tmp CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" go install "$@" "$pkg"
  mv -f "$tmp/$name" "$tools/$name"
  rm -rf "$tmp"
  log "$name: built in $((SECONDS - start))s"
}

build_tools() {
  go_install kind "sigs.k8s.io/kind@$KIND_VERSION"
  local cv="-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
  # The snapshotters kind never selects are left out, as kind's base image does.
  local tags="no_aufs no_zfs no_btrfs no_devmapper osusergo netgo static_build"
  for cmd in containerd ctr containerd-shim-runc-v2; do
    go_install "$cmd" "github.com/containerd/containerd/v2/cmd/$cmd@$CONTAINERD_VERSION" \
      -tags "$tags" -ldflags "-s -w $cv"
  done
  go_install crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" -ldflags "-s -w"
  go_install coredns "github.com/coredns/coredns@$COREDNS_VERSION" -ldflags "-s -w"
  if [[ ! -x "$tools/pause" ]]; then
    local src
    src="$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION/build/pause/linux/pause.c"
    [[ -f $src ]] || (cd "$cache_root/build" && go mod download "k8s.io/kubernetes@$KUBERNETES_VERSION")
    gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-modeldeploy" -o "$tools/.pause.partial" "$src"
    mv -f "$tools/.pause.partial" "$tools/pause"
  fi
}

# The node's root filesystem: what kind's base image installs, from bookworm.
build_base_image() {
  podman image exists "$base_image" && { log "$base_image exists"; return; }
  local kube_bin kind_src root
  kube_bin=$(bash "$here/build-binaries.sh" node | tail -1)
  kind_src="$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION/images/base/files"
  [[ -d $kind_src ]] || go mod download "sigs.k8s.io/kind@$KIND_VERSION"
  root=$(mktemp -d /var/tmp/modeldeploy-kind-rootfs.XXXXXX)
  leftover_paths+=("$root" "$root.log")
  log "debootstrap bookworm into $root"
  local packages=systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod
  packages+=,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,runc,e2fsprogs
  packages+=,containernetworking-plugins
  debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
    >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; return 1; }

  log "kind's base files and settings"
  install -m 0755 "$kind_src"/usr/local/bin/* "$root/usr/local/bin/"
  mkdir -p "$root/kind/bin" "$root/etc/containerd" "$root/etc/systemd/system/kubelet.service.d"
  cp -r "$kind_src/kind/." "$root/kind/"
  chmod -R a+rX "$root/kind" && chmod 0755 "$root"/kind/bin/*
  install -m 0644 "$kind_src/etc/crictl.yaml" "$root/etc/"
  install -m 0644 "$kind_src"/etc/containerd/* "$root/etc/containerd/"
  install -m 0644 "$kind_src"/etc/default/* "$root/etc/default/"
  install -m 0644 "$kind_src"/etc/sysctl.d/* "$root/etc/sysctl.d/"
  find "$kind_src/etc/systemd/system" -maxdepth 1 -type f -exec install -m 0644 {} "$root/etc/systemd/system/" \;
  install -m 0644 "$kind_src"/etc/systemd/system/kubelet.service.d/* \
    "$root/etc/systemd/system/kubelet.service.d/"
  # As kind's Dockerfile: only the units a node needs, no kmsg in the journal.
  find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
    "$root"/lib/systemd/system/local-fs.target.wants/* \
    "$root"/lib/systemd/system/sockets.target.wants/*udev* \
    "$root"/lib/systemd/system/sockets.target.wants/*initctl* \
    "$root"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
  chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service
  chroot "$root" systemctl mask systemd-binfmt.service
  mkdir -p "$root/etc/kubernetes/manifests"

  log "binaries: containerd, crictl, kubelet, kubeadm, kubectl, CNI plugins"
  install -m 0755 "$tools/containerd" "$tools/ctr" "$tools/containerd-shim-runc-v2" \
    "$tools/crictl" "$root/usr/local/bin/"
  install -m 0755 "$kube_bin/kubelet" "$kube_bin/kubeadm" "$kube_bin/kubectl" "$root/usr/bin/"
  mkdir -p "$root/opt/cni/bin"
  cp "$root"/usr/lib/cni/{bridge,host-local,loopback,portmap,ptp} "$root/opt/cni/bin/"
  # containerd's base OCI spec, as kind makes it: its product-uuid hook, no rlimits.
  "$tools/ctr" oci spec | python3 -c '
import json, sys
spec = json.load(sys.stdin)
spec.setdefault("hooks", {}).setdefault("createContainer", []).append(
    {"path": "/kind/bin/mount-product-files.sh"})
spec["process"].pop("rlimits", None)
json.dump(spec, sys.stdout, indent=2)' >"$root/etc/containerd/cri-base.json"
  # This host's root lacks CAP_SYS_RESOURCE: no process may lower its
  # oom_score_adj, so containerd must not try (every sandbox fails otherwise).
  sed -i -e 's/^\(\s*restrict_oom_score_adj\s*=\s*\).*/\1true/' \
    -e "s#^\(\s*sandbox_image\s*=\s*\).*#\1\"registry.k8s.io/pause:$PAUSE_VERSION\"#" \
    "$root/etc/containerd/config.toml"
  grep -q 'restrict_oom_score_adj = true' "$root/etc/containerd/config.toml"
  # No kindnetd image can be had: a single node's pods share one bridge. The
  # subnet is kind's default pod subnet, whose first /24 the node is given.
  mkdir -p "$root/etc/cni/net.d"
  cat >"$root/etc/cni/net.d/10-bridge.conflist" <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "kind-bridge",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  echo "$KUBERNETES_VERSION" >"$root/kind/version"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/*
  log "importing as $base_image"
  tar -C "$root" -c . | podman import \
    --change 'ENV container=docker' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    - "$base_image" >/dev/null
}

# scratch_image TAG BINARY [USER]: one static binary as an image.
scratch_image() {
  local tag=$1 binary=$2 user=${3:-0} ctx
  ctx=$(mktemp -d)
  leftover_paths+=("$ctx")
  cp "$binary" "$ctx/"
  printf 'FROM scratch\nCOPY %s /usr/local/bin/%s\nUSER %s\nENTRYPOINT ["/usr/local/bin/%s"]\n' \
    "$(basename "$binary")" "$(basename "$binary")" "$user" "$(basename "$binary")" >"$ctx/Containerfile"
  podman build --quiet --tag "$tag" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# The images kubeadm and containerd ask for, as one docker archive.
build_control_plane_archive() {
  local out=$1 kube_bin
  kube_bin=$(bash "$here/build-binaries.sh" node | tail -1)
  local r=registry.k8s.io v=$KUBERNETES_VERSION
  local images=("$r/kube-apiserver:$v" "$r/kube-controller-manager:$v" "$r/kube-scheduler:$v"
    "$r/kube-proxy:$v" "$r/etcd:$KUBEADM_ETCD_TAG" "$r/coredns/coredns:$COREDNS_VERSION"
    "$r/pause:$PAUSE_VERSION")
  log "control-plane images: ${images[*]}"
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    scratch_image "$r/$c:$v" "$kube_bin/$c"
  done
  scratch_image "$r/etcd:$KUBEADM_ETCD_TAG" "$kube_bin/etcd"
  scratch_image "$r/coredns/coredns:$COREDNS_VERSION" "$tools/coredns"
  scratch_image "$r/pause:$PAUSE_VERSION" "$tools/pause" 65535:65535
  # kube-proxy programs iptables: it runs on the node's own Debian userland.
  local ctx
  ctx=$(mktemp -d)
  leftover_paths+=("$ctx")
  cp "$kube_bin/kube-proxy" "$ctx/"
  printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\nENTRYPOINT []\nCMD []\n' \
    "$base_image" >"$ctx/Containerfile"
  podman build --quiet --tag "$r/kube-proxy:$v" "$ctx" >/dev/null
  rm -rf "$ctx"
  podman save --multi-image-archive --format docker-archive -o "$out" "${images[@]}"
}

# The node image: the base plus the control-plane images in containerd's
# store, imported by a containerd run inside a build container (as kind's own
# node-image builder does: pinned, not unpacked until used).
build_node_image() {
  podman image exists "$node_image" && { log "$node_image exists"; return; }
  build_base_image
  local work builder="modeldeploy-kind-build-$$"
  work=$(mktemp -d)
  leftover_paths+=("$work")
  leftover_containers+=("$builder")
  build_control_plane_archive "$work/images.tar"
  log "importing the images into the node's containerd"
  # bash as PID 1 reaps containerd once it exits (sleep would leave a zombie).
  podman run -d --name "$builder" --privileged --entrypoint bash "$base_image" \
    -c 'while :; do sleep 1; done' >/dev/null
  podman exec "$builder" bash -c 'nohup containerd >/dev/null 2>&1 &'
  podman exec "$builder" bash -c 'for i in $(seq 50); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1'
  podman exec -i "$builder" ctr --namespace=k8s.io images import \
    --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - \
    <"$work/images.tar" >/dev/null
  podman exec "$builder" ctr --namespace=k8s.io images list -q | grep -v '^sha256:' >&2
  podman exec "$builder" pkill containerd
  podman exec "$builder" bash -c 'while pgrep -x containerd >/dev/null; do sleep 0.1; done'
  podman commit --quiet \
    --change 'ENV container=docker' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    --change 'CMD []' \
    "$builder" "$node_image" >/dev/null
  log "$node_image built"
}

case "${1:-build}" in
  image) echo "$node_image" ;;
  tools)
    build_tools
    echo "$tools"
    ;;
  kind)
    go_install kind "sigs.k8s.io/kind@$KIND_VERSION"
    echo "$tools/kind"
    ;;
  build)
    for tool in go gcc debootstrap podman; do
      command -v "$tool" >/dev/null || { echo "$tool is missing: make system-deps" >&2; exit 2; }
    done
    start=$SECONDS
    build_tools
    build_node_image
    log "ready in $((SECONDS - start))s"
    echo "$node_image"
    ;;
  *) echo "usage: $0 [build|image|kind|tools]" >&2; exit 2 ;;
esac
