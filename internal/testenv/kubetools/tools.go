//go:build tools

// Package kubetools pins the Kubernetes and etcd programs that
// internal/testenv starts. It is a module of its own so that the main
// module's go.mod never names k8s.io/kubernetes; scripts/kube-tools.sh
// builds the programs from it.
package kubetools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
