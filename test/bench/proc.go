package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procStat is what /proc/<pid> tells about one process.
type procStat struct {
	rss    int64         // VmRSS in bytes
	hwm    int64         // VmHWM (peak RSS) in bytes
	cpu    time.Duration // utime + stime
	exists bool
}

func readProc(pid int) procStat {
	var ps procStat
	if pid <= 0 {
		return ps
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps
	}
	for _, line := range strings.Split(string(status), "\n") {
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			ps.rss = parseKB(line)
		case strings.HasPrefix(line, "VmHWM:"):
			ps.hwm = parseKB(line)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps
	}
	// The command name (field 2) may hold spaces; fields after it start at field 3.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		f := strings.Fields(s[i+1:])
		if len(f) > 12 {
			utime, _ := strconv.ParseInt(f[11], 10, 64)
			stime, _ := strconv.ParseInt(f[12], 10, 64)
			ps.cpu = time.Duration(utime+stime) * time.Second / clockTicks
		}
	}
	ps.exists = true
	return ps
}

func parseKB(line string) int64 {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	v, _ := strconv.ParseInt(f[1], 10, 64)
	return v * 1024
}

// systemCPU returns the busy and total CPU time of the machine from /proc/stat.
func systemCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	var sum, idle int64
	for i, v := range f[1:] {
		if i >= 8 { // guest time is already counted in user
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		sum += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return time.Duration(sum-idle) * time.Second / clockTicks, time.Duration(sum) * time.Second / clockTicks
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// vwGroup is the CPU group of the virtual-workspace server (B8).
const vwGroup = "virtual-workspace server"

// cpuSnapshot is the CPU time of every process of the run, by group, and of the machine.
type cpuSnapshot struct {
	at          time.Time
	groups      map[string]time.Duration
	busy, total time.Duration
}

// processGroup names the group a process of the environment belongs to in the CPU breakdown.
func processGroup(name string) string {
	switch {
	case name == "etcd":
		return "etcd"
	case strings.HasPrefix(name, "workload-syncer"):
		return "syncer"
	case strings.HasPrefix(name, "tmc-virtual-workspaces"):
		return vwGroup
	case strings.HasPrefix(name, "ws-") && strings.HasSuffix(name, "-apiserver"):
		return "upstream apiservers"
	case strings.HasSuffix(name, "-apiserver"):
		return "downstream apiserver"
	default:
		return "downstream kcm+scheduler+kwok"
	}
}

func takeCPU(env *localenv.Environment) cpuSnapshot {
	snap := cpuSnapshot{at: time.Now(), groups: map[string]time.Duration{}}
	for _, p := range env.Processes() {
		if ps := readProc(p.Pid()); ps.exists {
			snap.groups[processGroup(p.Name)] += ps.cpu
		}
	}
	snap.groups["harness+front proxy"] = readProc(os.Getpid()).cpu
	snap.busy, snap.total = systemCPU()
	return snap
}

// cpuUse is the CPU time spent between two snapshots.
type cpuUse struct {
	wall   time.Duration
	groups map[string]time.Duration
	// machineBusy is all busy CPU time of the machine; foreign is what no process of this
	// run used (other people's tests).
	machineBusy, foreign time.Duration
	cores                float64
}

func (s cpuSnapshot) until(end cpuSnapshot) cpuUse {
	u := cpuUse{wall: end.at.Sub(s.at), groups: map[string]time.Duration{}}
	var ours time.Duration
	for g, v := range end.groups {
		d := v - s.groups[g]
		if d < 0 { // a restarted process
			d = v
		}
		u.groups[g] = d
		ours += d
	}
	u.machineBusy = end.busy - s.busy
	if u.foreign = u.machineBusy - ours; u.foreign < 0 {
		u.foreign = 0
	}
	if u.wall > 0 {
		u.cores = float64(end.total-s.total) / float64(u.wall)
	}
	return u
}

// ours is the CPU time of every process of the run.
func (u cpuUse) ours() time.Duration {
	var t time.Duration
	for _, v := range u.groups {
		t += v
	}
	return t
}

// perObject prints the CPU time per object of the run's processes, with the main groups.
func (u cpuUse) perObject(n int) string {
	per := func(d time.Duration) float64 { return 1000 * d.Seconds() / float64(n) }
	return fmt.Sprintf("%.2f ms (apiservers %.2f, etcd %.2f, syncer %.2f, harness+front proxy %.2f)",
		per(u.ours()), per(u.groups["upstream apiservers"]+u.groups["downstream apiserver"]), per(u.groups["etcd"]),
		per(u.groups["syncer"]), per(u.groups["harness+front proxy"]))
}

// String prints the breakdown: "etcd 12.3s, ...; machine busy 95% (foreign 8%)".
func (u cpuUse) String() string {
	names := make([]string, 0, len(u.groups))
	for g := range u.groups {
		names = append(names, g)
	}
	sort.Slice(names, func(i, j int) bool { return u.groups[names[i]] > u.groups[names[j]] })
	var parts []string
	for _, g := range names {
		parts = append(parts, fmt.Sprintf("%s %.1fs", g, u.groups[g].Seconds()))
	}
	capacity := u.wall.Seconds() * u.cores
	busyPct, foreignPct := 0.0, 0.0
	if capacity > 0 {
		busyPct = 100 * u.machineBusy.Seconds() / capacity
		foreignPct = 100 * u.foreign.Seconds() / capacity
	}
	return fmt.Sprintf("over %.1fs: %s; machine busy %.0f%% of %.0f cores, of which not this run %.0f%%",
		u.wall.Seconds(), strings.Join(parts, ", "), busyPct, u.cores, foreignPct)
}
