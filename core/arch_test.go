package core_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/halobestie/mitra-availability"

// TestCoreAndPortsImportOnlyInward fails when core or ports (non-test code)
// import anything but the standard library, ports and core — in particular an
// adapter, app, echo, bun, valkey-go or fx, directly or through a dependency.
func TestCoreAndPortsImportOnlyInward(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`,
		module+"/core/...", module+"/ports/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 3 {
		t.Fatalf("go list found too few packages:\n%s", out)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		pkg, imports := f[0], f[1:]
		allowed := func(imp string) bool {
			if !strings.Contains(strings.Split(imp, "/")[0], ".") {
				return true // standard library
			}
			if strings.HasPrefix(pkg, module+"/ports") {
				return strings.HasPrefix(imp, module+"/ports")
			}
			return strings.HasPrefix(imp, module+"/ports") || strings.HasPrefix(imp, module+"/core")
		}
		for _, imp := range imports {
			if !allowed(imp) {
				t.Errorf("%s imports %s: core may import only ports, core and the standard library; ports only the standard library", pkg, imp)
			}
		}
	}

	deps, err := exec.Command("go", "list", "-deps", module+"/core/...", module+"/ports/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, deps)
	}
	forbidden := []string{module + "/adapters", module + "/app", "github.com/labstack/echo",
		"github.com/uptrace/bun", "github.com/valkey-io/valkey-go", "go.uber.org/fx"}
	for _, d := range strings.Fields(string(deps)) {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("core/ports depend on %s", d)
			}
		}
	}
}
