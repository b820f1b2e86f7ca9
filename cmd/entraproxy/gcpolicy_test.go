package main

import "testing"

func TestGCPercentFor(t *testing.T) {
	tests := []struct {
		live uint64
		want int
	}{
		{0, 800},        // before the first collection: the pacer's floor, 4 MiB × 8
		{4 << 20, 800},  // goal 36 MiB
		{8 << 20, 400},  // goal 40 MiB: live + 32 MiB
		{16 << 20, 200}, // goal 48 MiB
		{32 << 20, 100}, // from here on Go's default
		{1 << 30, 100},
	}
	for _, tc := range tests {
		if got := gcPercentFor(tc.live); got != tc.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}

func TestGCPolicyLeavesGoSettingsAlone(t *testing.T) {
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		getenv := func(k string) string {
			if k == name {
				return "200"
			}
			return ""
		}
		if setGCPolicy(getenv) {
			t.Errorf("with %s set, setGCPolicy installed the proxy's policy", name)
		}
	}
}
