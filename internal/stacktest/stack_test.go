package stacktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sightline/sightline/client"
	"github.com/sightline/sightline/internal/sim"
)

// binDir holds the sightline binary the tests build once.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stacktest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	http.DefaultClient.CloseIdleConnections() // the tests' queries
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// repoRoot is the repository's root directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var build struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

// sightlineBin builds cmd/sightline once per test binary and returns its
// path.
func sightlineBin(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.path = filepath.Join(binDir, "sightline")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/sightline")
		cmd.Dir = repoRoot(t)
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("go build ./cmd/sightline: %v\n%s", build.err, build.out)
	}
	return build.path
}

// freeAddr returns a 127.0.0.1 address nothing listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// proc is a child process of a test, in a process group of its own, its
// output in a log file of the test's temporary directory.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, once done is closed
}

// startProc runs bin with args and the extra environment variables env on
// top of the test's own. The process is stopped (SIGTERM, then SIGKILL
// after 10s) when t ends, and the end of its log printed if t failed.
func startProc(t testing.TB, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("--- %s (exit: %v), last lines of %s:\n%s", name, p.err, logPath, p.tail(40))
		}
	})
	return p
}

// stop sends SIGTERM to p's group and SIGKILL after grace; it returns once
// p has exited.
func (p *proc) stop(grace time.Duration) {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// tail returns the last n lines of p's log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitUntil calls f every 100ms until it reports done. It fails t with f's
// last complaint when timeout passes, or when p (if not nil) exits first.
func waitUntil(t testing.TB, p *proc, timeout time.Duration, f func() (done bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, why := f()
		if done {
			return
		}
		if p != nil {
			select {
			case <-p.done:
				t.Fatalf("%s exited (%v) while waiting: %s; last lines:\n%s", p.name, p.err, why, p.tail(30))
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// httpOK reports whether GET url answers 200, and otherwise why not.
func httpOK(url string) (bool, string) {
	resp, err := http.Get(url)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, "GET " + url + ": " + resp.Status
	}
	return true, ""
}

// node is a running sightline serve process.
type node struct {
	*proc
	base string // http://host:port
	// c is a client without tracing, for setup.
	c *client.Client
}

// startNode runs `sightline serve` on a free port with its own data
// directory, the split ftrl=100 (an untrained model scores every item, so
// an ordinary request does not fall back) and the extra flags and
// environment given, and waits until /readyz answers 200.
func startNode(t testing.TB, env []string, flags ...string) *node {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"serve",
		"--addr", addr,
		"--data-dir", filepath.Join(t.TempDir(), "data"),
		"--split", "ftrl=100",
		"--pseudonym-key", "stacktest",
	}, flags...)
	p := startProc(t, "sightline", sightlineBin(t), env, args...)
	n := &node{proc: p, base: "http://" + addr}
	waitUntil(t, p, 60*time.Second, func() (bool, string) { return httpOK(n.base + "/readyz") })
	c, err := client.New(n.base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	n.c = c
	return n
}

// loadWorld imports a small synthetic world (users and items) into n and
// waits until a complete user gets items without a fallback. It returns
// the world.
func loadWorld(t testing.TB, n *node) *sim.World {
	t.Helper()
	w := sim.NewWorld(sim.WorldConfig{Seed: 13, Users: 300, Items: 200})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.Load(ctx, n.c); err != nil {
		t.Fatalf("load world: %v", err)
	}
	u := completeUser(t, w)
	waitUntil(t, n.proc, 20*time.Second, func() (bool, string) {
		r, err := n.c.Recommend(ctx, client.RecommendRequest{UserID: u, Count: 5, Context: client.Context{Channel: "web"}})
		if err != nil {
			return false, err.Error()
		}
		return len(r.Items) > 0 && r.Fallback == nil, fmt.Sprintf("recommendation %+v, want items and no fallback", r)
	})
	return w
}

// completeUser returns the id of a user of w with every required feature.
func completeUser(t testing.TB, w *sim.World) string {
	t.Helper()
	for i := range len(w.Users()) {
		if u := w.User(i); u.AgeBucket != "" && u.Segment != "" {
			return u.ID
		}
	}
	t.Fatal("the world has no user with age bucket and segment")
	return ""
}

// ndjson joins the JSON lines.
func ndjson(lines []string) *bytes.Reader {
	return bytes.NewReader([]byte(strings.Join(lines, "\n") + "\n"))
}
