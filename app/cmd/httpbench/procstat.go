package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100
// on every Linux architecture Go runs on.
const clockTicks = 100

// processCPU returns the CPU time (user + system, in seconds) the process pid
// has used so far, from /proc/<pid>/stat.
func processCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the CPU time of process %d: %w", pid, err)
	}
	return parseProcStat(string(data))
}

// parseProcStat reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may hold spaces and parentheses itself, so the fields are counted from the
// last ')'.
func parseProcStat(line string) (float64, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat line without a command name: %.80q", line)
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat line with %d fields after the command name", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat line: utime %q, stime %q", f[11], f[12])
	}
	return float64(utime+stime) / clockTicks, nil
}

// cpuMeter measures the CPU time one process spends over a window; the zero
// pid measures nothing.
type cpuMeter struct {
	pid   int
	start float64
	err   error
}

func (m *cpuMeter) begin() {
	if m.pid > 0 {
		m.start, m.err = processCPU(m.pid)
	}
}

// end returns the CPU seconds since begin, or false when there is no process
// to measure or it could not be read.
func (m *cpuMeter) end() (float64, bool) {
	if m.pid <= 0 || m.err != nil {
		return 0, false
	}
	now, err := processCPU(m.pid)
	if err != nil {
		return 0, false
	}
	return now - m.start, true
}
