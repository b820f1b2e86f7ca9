package main

import (
	"os"

	"golang.org/x/sys/windows"
)

// enableColor reports whether the console f writes to shows ANSI colour
// sequences, switching them on if it can. The Windows console interprets
// them only with ENABLE_VIRTUAL_TERMINAL_PROCESSING set, which a program has
// to ask for; consoles older than Windows 10 refuse, and there colour stays
// off rather than printing escape codes as text
// (https://learn.microsoft.com/windows/console/console-virtual-terminal-sequences).
// The mode belongs to the console, not the process, so it stays on after
// entraproxy exits, as with other programs that set it.
func enableColor(f *os.File) bool {
	h := windows.Handle(f.Fd())
	var mode uint32
	if err := windows.GetConsoleMode(h, &mode); err != nil {
		return false
	}
	if mode&windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING != 0 {
		return true
	}
	return windows.SetConsoleMode(h, mode|windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING) == nil
}
