#!/usr/bin/env bash
# Builds the programs internal/testenv's Kube cluster runs (kube-apiserver,
# kubectl, etcd, kwok) from the pinned module internal/testenv/kubetools into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/airlock-testenv/kube-<version>-<hash>/
# where <hash> covers kubetools/go.mod and go.sum, so a change of pins builds
# into a new directory and a machine builds each set once. Programs already
# in the directory are skipped. Prints the directory on stdout.
#
# The first build takes a while (see docs/testing.md); `make test` runs this
# only when CI=true, before `go test`, so no test timeout includes it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mod="$root/internal/testenv/kubetools"
version="$(awk '$1 == "k8s.io/kubernetes" || ($1 == "require" && $2 == "k8s.io/kubernetes") { print $NF; exit }' "$mod/go.mod")"
version="${version#v}"
hash="$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-12)"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/airlock-testenv/kube-$version-$hash"
mkdir -p "$dir"

# The version the apiserver reports and kubectl prints; without it both say
# v0.0.0-master, which kwok and kubectl's skew check read as a very old server.
vpkgs="k8s.io/component-base/version k8s.io/client-go/pkg/version"
minor="$(echo "$version" | cut -d. -f2)"
ldflags="-s -w"
for p in $vpkgs; do
  ldflags="$ldflags -X $p.gitVersion=v$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done

build() { # name package
  local name="$1" pkg="$2"
  if [ -x "$dir/$name" ]; then
    return 0
  fi
  local start=$SECONDS
  echo "kube-tools: building $name ($pkg) into $dir" >&2
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="$ldflags" -o "$dir/.$name.tmp" "$pkg")
  mv "$dir/.$name.tmp" "$dir/$name"
  echo "kube-tools: $name built in $((SECONDS - start))s" >&2
}

build kwok sigs.k8s.io/kwok/cmd/kwok

# kwok reads its stages (how a fake node and pod move through their
# lifecycle) from config, and testenv creates a Logs object per pod, whose
# CRD must be installed: both ship as YAML in the pinned kwok module, so
# take them from there rather than keep copies in this repo.
if [ ! -f "$dir/kwok-data/done" ]; then
  (cd "$mod" && go mod download sigs.k8s.io/kwok)
  kwoksrc="$(cd "$mod" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  rm -rf "$dir/kwok-data" && mkdir -p "$dir/kwok-data/stages" "$dir/kwok-data/crds"
  cp "$kwoksrc"/kustomize/stage/node/fast/node-*.yaml "$kwoksrc"/kustomize/stage/pod/fast/pod-*.yaml "$dir/kwok-data/stages/"
  cp "$kwoksrc"/kustomize/crd/bases/kwok.x-k8s.io_logs.yaml "$dir/kwok-data/crds/"
  chmod -R u+w "$dir/kwok-data"
  touch "$dir/kwok-data/done"
fi
build etcd go.etcd.io/etcd/server/v3
build kubectl k8s.io/kubernetes/cmd/kubectl
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
echo "$dir"
