package benchprof

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestServe: the address file names a listener that serves the runtime
// metrics and the pprof index.
func TestServe(t *testing.T) {
	file := filepath.Join(t.TempDir(), "addr")
	stop, err := Serve(file)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	addr, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + string(addr) + "/debug/runtime")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range RuntimeMetrics {
		if _, ok := m[name]; !ok {
			t.Errorf("/debug/runtime has no %s", name)
		}
	}
	if m["/gc/heap/allocs:bytes"] <= 0 {
		t.Errorf("/gc/heap/allocs:bytes = %v, want more than 0", m["/gc/heap/allocs:bytes"])
	}
	resp, err = http.Get("http://" + string(addr) + "/debug/pprof/allocs?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/debug/pprof/allocs: %s, want 200", resp.Status)
	}
}
