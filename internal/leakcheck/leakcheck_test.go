package leakcheck

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Check returns once what the work left behind has ended: here a goroutine
// and an open file that the settle function lets go of.
func TestCheckWaitsForTheCountsToComeBack(t *testing.T) {
	base := Quiet(t)
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-release
	}()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	if now := Now(t); now.Goroutines <= base.Goroutines || now.Files <= base.Files {
		t.Fatalf("counts %+v with a goroutine and a file open, baseline %+v", now, base)
	}
	Check(t, "after the work", base, 0, func() {
		f.Close()
		select {
		case <-release:
		default:
			close(release)
		}
	})
	<-done
}

// fatalRecorder is a testing.TB whose Fatalf records the message instead
// of ending the goroutine.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

// A goroutine that never ends is a failure that names the counts and shows
// where the goroutine waits.
func TestCheckFailsWithADumpOnALeak(t *testing.T) {
	base := Quiet(t)
	stop := make(chan struct{})
	defer close(stop)
	go leakedWorker(stop)
	rec := &fatalRecorder{TB: t}
	check(rec, "after the work", base, 0, 50*time.Millisecond, nil)
	for _, want := range []string{"after the work: goroutines = ", "leakedWorker"} {
		if !strings.Contains(rec.fatal, want) {
			t.Errorf("failure message lacks %q:\n%s", want, rec.fatal)
		}
	}
}

func leakedWorker(stop <-chan struct{}) { <-stop }
