package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisServer is a redis-server process of the test on a fixed loopback
// port, so it can be stopped and started again where the nodes expect it.
// It keeps no data on disk while it runs; stop saves a dump (SHUTDOWN
// SAVE) that the next start loads, as a maintenance restart would.
type redisServer struct {
	t      *testing.T
	bin    string
	addr   string
	dir    string
	logDir string
	runs   int
	p      *proc
}

// startRedis starts redis-server (bin) on a free loopback port.
func startRedis(t *testing.T, bin, dir, logDir string) *redisServer {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	r := &redisServer{t: t, bin: bin, addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, logDir: logDir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.start()
	return r
}

// start runs redis-server on r.addr and waits until it answers PING.
func (r *redisServer) start() {
	r.t.Helper()
	r.runs++
	_, port, _ := net.SplitHostPort(r.addr)
	r.p, _ = startProc(r.t, r.logDir, procConfig{
		name: fmt.Sprintf("redis-%d", r.runs),
		bin:  r.bin,
		args: []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", r.dir, "--logfile", "", "--daemonize", "no"},
		env: childEnv(nil),
	})
	why, ok := pollUntil(r.t.Context(), 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		if r.p.exited() {
			return true, "exited"
		}
		reply, err := redisDo(r.addr, time.Second, "PING")
		if err != nil {
			return false, err.Error()
		}
		if reply != "+PONG" {
			return false, "PING = " + reply
		}
		// A restarted server answers PING while it still loads the dump
		// (with -LOADING); wait until a read works.
		reply, err = redisDo(r.addr, time.Second, "DBSIZE")
		if err != nil {
			return false, err.Error()
		}
		if !strings.HasPrefix(reply, ":") {
			return false, "DBSIZE = " + reply
		}
		return true, ""
	})
	if !ok || r.p.exited() {
		r.t.Fatalf("redis-server on %s not ready: %s (%s); last lines:\n%s", r.addr, why, r.p.exitState(), r.p.log.tail(20))
	}
}

// stop saves the data set to r.dir and stops the server (SHUTDOWN SAVE),
// waiting until the process has exited.
func (r *redisServer) stop() {
	r.t.Helper()
	reply, err := redisDo(r.addr, 10*time.Second, "SHUTDOWN", "SAVE")
	// A successful SHUTDOWN closes the connection without a reply.
	if err != nil && !errors.Is(err, io.EOF) {
		r.t.Logf("SHUTDOWN SAVE: %v (killing the server)", err)
	} else if reply != "" {
		r.t.Logf("SHUTDOWN SAVE = %q (killing the server)", reply)
	}
	select {
	case <-r.p.done:
	case <-time.After(10 * time.Second):
		r.t.Logf("redis-server did not exit 10s after SHUTDOWN; killing it")
		r.p.kill()
	}
	if _, err := os.Stat(filepath.Join(r.dir, "dump.rdb")); err != nil {
		r.t.Errorf("redis-server left no dump to restart from: %v", err)
	}
}

// redisDo sends one command in the RESP protocol and returns the first
// line of the reply ("+PONG", ":12", "-ERR ..."); a bulk reply is returned
// as its header line.
func redisDo(addr string, timeout time.Duration, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// freePort returns a port that is free on 127.0.0.1 at the time of the
// call.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// childEnv returns the test's environment without the variables that would
// configure a child behind the test's back (SIGHTLINE_* become flags of
// sightline; OTEL_* configure its exporters), plus extra.
func childEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SIGHTLINE_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// ctxSleep waits d or until ctx ends.
func ctxSleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
