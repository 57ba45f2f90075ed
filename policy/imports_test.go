package policy

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestPureImports keeps the package pure: no network, no processes, no
// store. Only Load (parse.go) may touch the file system.
func TestPureImports(t *testing.T) {
	allowed := map[string]bool{
		"bytes": true, "cmp": true, "encoding/json": true, "errors": true, "fmt": true, "io": true,
		"path/filepath": true, "regexp": true, "slices": true, "strconv": true, "strings": true,
		"time": true, "time/tzdata": true, "go.yaml.in/yaml/v3": true, "github.com/airlockhq/airlock": true,
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "os" && name == "parse.go" {
				continue
			}
			if !allowed[path] {
				t.Errorf("%s imports %q: package policy must stay pure", name, path)
			}
		}
	}
}
