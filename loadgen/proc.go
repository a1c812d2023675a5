package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports (the kernel ABI fixes it).
const clockTicks = 100

// procSample is one reading of a process's memory and CPU.
type procSample struct {
	at       time.Time
	rssKiB   int64 // VmRSS
	hwmKiB   int64 // VmHWM: peak RSS since start
	cpuTicks int64 // utime + stime, all threads
	threads  int64
	fds      int64 // open descriptors; -1 if unreadable
	syscr    int64 // read-family syscalls so far (/proc/<pid>/io); -1 if unreadable
	syscw    int64 // write-family syscalls so far
}

// readProc samples pid ("self" for this process).
func readProc(pid string) (procSample, error) {
	s := procSample{at: time.Now(), fds: -1}
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return s, err
	}
	// The command name (field 2) may contain spaces and parens: split after the last ')'.
	rp := bytes.LastIndexByte(stat, ')')
	if rp < 0 {
		return s, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	f := strings.Fields(string(stat[rp+1:]))
	if len(f) < 18 {
		return s, fmt.Errorf("/proc/%s/stat: only %d fields", pid, len(f))
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.threads, _ = strconv.ParseInt(f[17], 10, 64)
	s.cpuTicks = utime + stime

	status, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return s, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &s.rssKiB
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &s.hwmKiB
		default:
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 2 {
			*dst, _ = strconv.ParseInt(fields[1], 10, 64)
		}
	}
	if ents, err := os.ReadDir("/proc/" + pid + "/fd"); err == nil {
		s.fds = int64(len(ents))
	}
	s.syscr, s.syscw = -1, -1
	if io, err := os.ReadFile("/proc/" + pid + "/io"); err == nil {
		for _, line := range strings.Split(string(io), "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "syscr":
				s.syscr = n
			case "syscw":
				s.syscw = n
			}
		}
	}
	return s, nil
}

// cpuPercent is the CPU used between a and b in percent of one core.
func cpuPercent(a, b procSample) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return 0
	}
	return float64(b.cpuTicks-a.cpuTicks) / clockTicks / wall * 100
}

// cpuSeconds is the CPU time used between a and b.
func cpuSeconds(a, b procSample) float64 {
	return float64(b.cpuTicks-a.cpuTicks) / clockTicks
}

// pidListeningOn finds the process that holds a listening TCP socket on port,
// by matching the socket inode in /proc/net/tcp{,6} against /proc/*/fd.
func pidListeningOn(port int) (int, error) {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			colon := strings.LastIndexByte(f[1], ':')
			p, err := strconv.ParseInt(f[1][colon+1:], 16, 32)
			if err == nil && int(p) == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no process listens on TCP port %d: is the relay running? (or pass -pid)", port)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	self := os.Getpid()
	for _, dir := range procs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil || pid == self {
			continue
		}
		fds, err := os.ReadDir(dir + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(dir + "/fd/" + fd.Name()); err == nil && inodes[link] {
				return pid, nil
			}
		}
	}
	return 0, errors.New("a socket listens on the port but no readable /proc/<pid>/fd holds it (run as the relay's user or root, or pass -pid)")
}
