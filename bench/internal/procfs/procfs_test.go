package procfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestTreeFindsChildren: a child process is part of its parent's tree.
func TestTreeFindsChildren(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if got := Tree(os.Getpid()); !slices.Contains(got, cmd.Process.Pid) {
		t.Errorf("Tree(self) = %v, want it to hold the child %d", got, cmd.Process.Pid)
	}
}

// TestIOCountsWrites: a write(2) shows in syscw.
func TestIOCountsWrites(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := IOOf(os.Getpid())
	for range 3 {
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if got := IOOf(os.Getpid()).Sub(before).Writes; got < 3 {
		t.Errorf("write system calls = %d, want at least 3", got)
	}
}

func TestReadsCPUAndMemory(t *testing.T) {
	if rss := RSSKiB(os.Getpid()); rss <= 0 {
		t.Errorf("RSSKiB(self) = %d, want more than 0", rss)
	}
	if c := CPUOf(os.Getpid()); c.User < 0 || c.System < 0 {
		t.Errorf("CPUOf(self) = %+v, want no negative time", c)
	}
	if c := CPUOf(1 << 30); c.Total() != 0 { // no such process
		t.Errorf("CPUOf(no such pid) = %+v, want zero", c)
	}
}
