// Package procfs reads what the benchmarks measure of a process tree from
// Linux's /proc: CPU time, resident memory and read/write system calls.
// A process tree is a pid and its descendants (nginx's master and workers).
package procfs

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; 100
// on every Linux architecture Go supports (proc(5)).
const clockTicks = 100

// Tree is pid and its descendants.
func Tree(pid int) []int {
	pids := []int{pid}
	for i := 0; i < len(pids); i++ {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pids[i]))
		for _, t := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pids[i], t.Name()))
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					pids = append(pids, c)
				}
			}
		}
	}
	return pids
}

// CPU is the processor time a process tree has used, in seconds, split as
// the kernel accounts it: User in the program, System in the kernel on its
// behalf (system calls, and the network stack's work they cause).
type CPU struct {
	User, System float64
}

// Total is User + System.
func (c CPU) Total() float64 { return c.User + c.System }

// Sub is the CPU used between an earlier reading and c.
func (c CPU) Sub(earlier CPU) CPU {
	return CPU{User: c.User - earlier.User, System: c.System - earlier.System}
}

// CPUOf is utime and stime (fields 14 and 15 of /proc/PID/stat) of pid and
// its descendants. Processes that end meanwhile are skipped. The resolution
// is 10 ms per process.
func CPUOf(pid int) CPU {
	var user, sys int64
	for _, p := range Tree(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// The command name may hold spaces; the fields after it do not.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(fields[11], 10, 64)  // field 14, utime
		st, _ := strconv.ParseInt(fields[12], 10, 64) // field 15, stime
		user += u
		sys += st
	}
	return CPU{User: float64(user) / clockTicks, System: float64(sys) / clockTicks}
}

// RSSKiB is VmRSS of pid and its descendants, in KiB.
func RSSKiB(pid int) int64 {
	var total int64
	for _, p := range Tree(pid) {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += n
			}
		}
		f.Close()
	}
	return total
}

// IO counts the read and write system calls of a process tree: syscr and
// syscw of /proc/PID/io (proc(5)). They count read(2), readv(2), write(2),
// writev(2) and their kin, which is how Go reads and writes sockets;
// recv(2) and send(2), which nginx uses, are not counted.
type IO struct {
	Reads, Writes int64
}

// Sub is the system calls made between an earlier reading and io.
func (io IO) Sub(earlier IO) IO {
	return IO{Reads: io.Reads - earlier.Reads, Writes: io.Writes - earlier.Writes}
}

// IOOf reads syscr and syscw of pid and its descendants.
func IOOf(pid int) IO {
	var r IO
	for _, p := range Tree(pid) {
		f, err := os.Open(fmt.Sprintf("/proc/%d/io", p))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "syscr":
				r.Reads += n
			case "syscw":
				r.Writes += n
			}
		}
		f.Close()
	}
	return r
}
