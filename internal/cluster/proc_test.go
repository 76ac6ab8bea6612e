package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a child process of the test. It runs in a process group of its
// own (so a kill reaches anything it starts), writes stdout and stderr to a
// log file in the test's temporary directory, and keeps its recent lines
// in memory with the time they arrived, for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *lineLog
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result; read after done is closed
}

// procConfig describes a child process.
type procConfig struct {
	name string
	bin  string
	args []string
	env  []string // the whole environment of the child
	dir  string   // working directory; empty means the test's
	// ready, when set, is called with every line of output; the first
	// non-empty string it returns is delivered by proc.ready.
	ready func(line string) string
}

// startProc starts the process described by pc, logging to logDir/name.log.
// The process is killed (its whole group, SIGKILL) when t ends, and the
// tail of its log is printed if t failed.
func startProc(t *testing.T, logDir string, pc procConfig) (*proc, <-chan string) {
	t.Helper()
	f, err := os.Create(filepath.Join(logDir, pc.name+".log"))
	if err != nil {
		t.Fatalf("create log of %s: %v", pc.name, err)
	}
	ready := make(chan string, 1)
	l := &lineLog{f: f, ready: pc.ready, readyCh: ready}
	cmd := exec.Command(pc.bin, pc.args...)
	cmd.Env = pc.env
	cmd.Dir = pc.dir
	cmd.Stdout = l
	cmd.Stderr = l
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", pc.name, err)
	}
	p := &proc{name: pc.name, cmd: cmd, log: l, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		l.close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s (%s, exit: %v), last lines:\n%s", p.name, f.Name(), p.exitState(), p.log.tail(40))
		}
	})
	return p, ready
}

// kill sends SIGKILL to p's process group and waits until p has exited.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// exited reports whether p has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitState describes how p ended, or says it is running.
func (p *proc) exitState() string {
	if !p.exited() {
		return "running"
	}
	if p.err == nil {
		return "exit 0"
	}
	return p.err.Error()
}

// waitReady waits for the first line that pc.ready accepted and returns
// what ready returned. It fails t when p exits first or timeout passes.
func waitReady(t *testing.T, p *proc, ready <-chan string, timeout time.Duration) string {
	t.Helper()
	select {
	case v := <-ready:
		return v
	case <-p.done:
		t.Fatalf("%s exited before it was ready (%s); last lines:\n%s", p.name, p.exitState(), p.log.tail(30))
	case <-time.After(timeout):
		t.Fatalf("%s not ready after %v; last lines:\n%s", p.name, timeout, p.log.tail(30))
	}
	return ""
}

// logLine is one line of a child's output and when it arrived.
type logLine struct {
	at   time.Time
	text string
}

// lineLog is the io.Writer of a child's stdout and stderr: it appends to
// the log file and keeps the last maxLines lines in memory.
type lineLog struct {
	f       *os.File
	ready   func(string) string
	readyCh chan string

	mu      sync.Mutex
	partial []byte
	lines   []logLine // ring of the last maxLines lines
	next    int
	full    bool
	sent    bool
	closed  bool
}

const maxLines = 4000

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		_, _ = l.f.Write(b)
	}
	now := time.Now()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.add(now, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

func (l *lineLog) add(at time.Time, s string) {
	if len(l.lines) < maxLines {
		l.lines = append(l.lines, logLine{at, s})
	} else {
		l.lines[l.next] = logLine{at, s}
		l.next = (l.next + 1) % maxLines
		l.full = true
	}
	if l.ready != nil && !l.sent {
		if v := l.ready(s); v != "" {
			l.sent = true
			l.readyCh <- v
		}
	}
}

func (l *lineLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.add(time.Now(), string(l.partial))
		l.partial = nil
	}
	l.closed = true
	_ = l.f.Close()
}

// snapshot returns the kept lines, oldest first.
func (l *lineLog) snapshot() []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return append([]logLine(nil), l.lines...)
	}
	out := make([]logLine, 0, len(l.lines))
	out = append(out, l.lines[l.next:]...)
	return append(out, l.lines[:l.next]...)
}

// tail returns the last n lines, each cut to a readable length.
func (l *lineLog) tail(n int) string {
	lines := l.snapshot()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return formatLines(lines)
}

// since returns up to n lines that arrived at or after t and satisfy keep,
// the last ones when there are more.
func (l *lineLog) since(t time.Time, n int, keep func(string) bool) []logLine {
	var out []logLine
	for _, ln := range l.snapshot() {
		if !ln.at.Before(t) && (keep == nil || keep(ln.text)) {
			out = append(out, ln)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

func formatLines(lines []logLine) string {
	var b strings.Builder
	for _, ln := range lines {
		s := ln.text
		if len(s) > 600 {
			s = s[:600] + "…"
		}
		fmt.Fprintf(&b, "    %s %s\n", ln.at.Format("15:04:05.000"), s)
	}
	return b.String()
}

// isWarnOrError reports whether a JSON log line is at level WARN or ERROR,
// or a plain line that looks like a failure (a panic, a fatal error).
func isWarnOrError(s string) bool {
	return strings.Contains(s, `"level":"WARN"`) || strings.Contains(s, `"level":"ERROR"`) ||
		strings.HasPrefix(s, "panic:") || strings.HasPrefix(s, "fatal error:") ||
		strings.HasPrefix(s, "sightline:") || strings.HasPrefix(s, "goroutine ")
}

// pollUntil calls f every interval until it returns true, or until timeout
// passes or ctx ends; it returns the last reason f gave and whether f
// succeeded.
func pollUntil(ctx context.Context, timeout, interval time.Duration, f func() (bool, string)) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := f()
		if ok {
			return why, true
		}
		if time.Now().After(deadline) {
			return why, false
		}
		select {
		case <-ctx.Done():
			return fmt.Sprintf("%s (%v)", why, ctx.Err()), false
		case <-time.After(interval):
		}
	}
}

// errNoAnswer is a request that got no HTTP answer (refused, reset, timed
// out), as opposed to an answer with an error status.
var errNoAnswer = errors.New("no answer")
