package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/metrics"
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

// readProc samples pid ("self" for this process). pid may list several
// processes, comma-separated (relays sharing one Redis): their figures are
// summed (RSS, CPU time, threads, descriptors, syscalls).
func readProc(pid string) (procSample, error) { return sumProcs(pid, readProcOne) }

// sumProcs reads each process of a comma-separated pid list and adds up
// their figures; one that cannot be read fails the whole sample.
func sumProcs(pids string, read func(string) (procSample, error)) (procSample, error) {
	if !strings.Contains(pids, ",") {
		return read(pids)
	}
	var sum procSample
	for i, pid := range strings.Split(pids, ",") {
		s, err := read(pid)
		if err != nil {
			return s, err
		}
		if i == 0 {
			sum = s
			continue
		}
		sum.at = s.at
		sum.rssKiB += s.rssKiB
		sum.hwmKiB += s.hwmKiB
		sum.cpuTicks += s.cpuTicks
		sum.threads += s.threads
		for _, f := range []struct {
			dst *int64
			v   int64
		}{{&sum.fds, s.fds}, {&sum.syscr, s.syscr}, {&sum.syscw, s.syscw}} {
			if *f.dst < 0 || f.v < 0 {
				*f.dst = -1 // unreadable for one: unknown for the sum
			} else {
				*f.dst += f.v
			}
		}
	}
	return sum, nil
}

func readProcOne(pid string) (procSample, error) {
	s := procSample{at: time.Now(), fds: -1}
	if err := readStat(pid, &s); err != nil {
		return s, err
	}
	if err := readStatus(pid, &s); err != nil {
		return s, err
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

// readMem samples only pid's memory (VmRSS, VmHWM): cheap enough to repeat
// every few milliseconds, unlike readProc, which lists every descriptor.
func readMem(pid string) (procSample, error) {
	return sumProcs(pid, func(pid string) (procSample, error) {
		s := procSample{at: time.Now(), fds: -1, syscr: -1, syscw: -1}
		return s, readStatus(pid, &s)
	})
}

// readCPU samples only pid's CPU time and threads: unlike readProc it does
// not list the descriptors, which takes milliseconds for a process holding
// thousands of sockets.
func readCPU(pid string) (procSample, error) {
	return sumProcs(pid, func(pid string) (procSample, error) {
		s := procSample{at: time.Now(), fds: -1, syscr: -1, syscw: -1}
		return s, readStat(pid, &s)
	})
}

// readStat fills s's CPU time and threads from /proc/<pid>/stat.
func readStat(pid string, s *procSample) error {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return err
	}
	// The command name (field 2) may contain spaces and parens: split after the last ')'.
	rp := bytes.LastIndexByte(stat, ')')
	if rp < 0 {
		return fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	f := strings.Fields(string(stat[rp+1:]))
	if len(f) < 18 {
		return fmt.Errorf("/proc/%s/stat: only %d fields", pid, len(f))
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.threads, _ = strconv.ParseInt(f[17], 10, 64)
	s.cpuTicks = utime + stime
	return nil
}

// readStatus fills s's memory figures from /proc/<pid>/status.
func readStatus(pid string, s *procSample) error {
	status, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return err
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
	return sc.Err()
}

// machineCPU is the whole machine's CPU time from /proc/stat, in ticks.
type machineCPU struct{ busy, total int64 }

func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 6 || f[0] != "cpu" {
		return machineCPU{}
	}
	var m machineCPU
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		m.total += n
		if i != 3 && i != 4 { // idle, iowait
			m.busy += n
		}
	}
	return m
}

// busyPercent is the machine's busy CPU between a and b, in percent of one
// core (200 is two cores busy).
func (a machineCPU) busyPercent(b machineCPU, cpus int) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total) * 100 * float64(cpus)
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

// schedSnapshot is the Go scheduler's latency histogram (time goroutines
// spent runnable before running) of this process at one moment.
type schedSnapshot struct{ h *metrics.Float64Histogram }

func schedLatencies() schedSnapshot {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return schedSnapshot{}
	}
	return schedSnapshot{s[0].Value.Float64Histogram()}
}

// since is the q-quantile (0 < q <= 1), in milliseconds, of the scheduler
// latencies recorded after s was taken (the upper bound of its bucket).
func (s schedSnapshot) since(q float64) float64 {
	now := schedLatencies()
	if s.h == nil || now.h == nil || len(now.h.Counts) != len(s.h.Counts) {
		return 0
	}
	var total uint64
	counts := make([]uint64, len(now.h.Counts))
	for i := range counts {
		counts[i] = now.h.Counts[i] - s.h.Counts[i]
		total += counts[i]
	}
	if total == 0 {
		return 0
	}
	rank := max(uint64(q*float64(total)+0.5), 1)
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			upper := now.h.Buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = now.h.Buckets[i]
			}
			return upper * 1000
		}
	}
	return 0
}
