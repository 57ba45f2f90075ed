//go:build benchpprof

package main

// With -tags benchpprof (bench/mysql.sh builds so when PROFILE is set)
// the server serves net/http/pprof on $BENCH_PPROF_ADDR, for profiling a
// benchmark run. Shipped builds never carry this file.

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("BENCH_PPROF_ADDR"); addr != "" {
		go http.ListenAndServe(addr, nil)
	}
}
