package stacktest

import (
	"archive/tar"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// nonroot is the uid and gid the image runs as.
const nonroot = 65532

// imageConfig is the part of a docker image configuration the test reads.
type imageConfig struct {
	User         string              `json:"User"`
	Env          []string            `json:"Env"`
	Entrypoint   []string            `json:"Entrypoint"`
	Cmd          []string            `json:"Cmd"`
	WorkingDir   string              `json:"WorkingDir"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	Volumes      map[string]struct{} `json:"Volumes"`
	Healthcheck  *struct {
		Test []string `json:"Test"`
	} `json:"Healthcheck"`
}

// image is an unpacked image: its configuration, its root filesystem in a
// directory, and the tar header of every path in it.
type image struct {
	config imageConfig
	root   string
	files  map[string]*tar.Header // by path without a leading slash
	size   int64                  // bytes of the layers' files
}

// unpackImage reads a docker-archive (podman save) and applies its layers
// in order into a fresh directory, keeping owners and modes when the test
// runs as root.
func unpackImage(t *testing.T, archive string) *image {
	t.Helper()
	entries := readTar(t, archive)
	var manifest []struct {
		Config string   `json:"Config"`
		Layers []string `json:"Layers"`
	}
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("%s: manifest.json: %v (%d images), want one image", archive, err, len(manifest))
	}
	var cfg struct {
		Config imageConfig `json:"config"`
	}
	if err := json.Unmarshal(entries[manifest[0].Config], &cfg); err != nil {
		t.Fatalf("%s: image config %s: %v", archive, manifest[0].Config, err)
	}
	// The root must be reachable by the nonroot user the node runs as.
	root, err := os.MkdirTemp("", "stacktest-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	img := &image{config: cfg.Config, root: root, files: map[string]*tar.Header{}}
	for _, layer := range manifest[0].Layers {
		b, ok := entries[layer]
		if !ok {
			t.Fatalf("%s: layer %s missing", archive, layer)
		}
		if err := img.apply(strings.NewReader(string(b))); err != nil {
			t.Fatalf("%s: layer %s: %v", archive, layer, err)
		}
	}
	return img
}

// readTar returns the regular files of the tar archive at p by name.
func readTar(t *testing.T, p string) map[string][]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("read %s: %s: %v", p, h.Name, err)
			}
			out[path.Clean(h.Name)] = b
		}
	}
}

// apply extracts one layer into img.root.
func (img *image) apply(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if name == "" {
			continue
		}
		dst := filepath.Join(img.root, filepath.FromSlash(name))
		if dir, base := path.Split(name); strings.HasPrefix(base, ".wh.") { // a deletion
			gone := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			delete(img.files, gone)
			if err := os.RemoveAll(filepath.Join(img.root, filepath.FromSlash(gone))); err != nil {
				return err
			}
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			n, err := io.Copy(f, tr)
			img.size += n
			if err := errors.Join(err, f.Close()); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			_ = os.Remove(dst)
			if err := os.Symlink(h.Linkname, dst); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected entry type %q", name, h.Typeflag)
		}
		if h.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(dst, os.FileMode(h.Mode).Perm()); err != nil {
				return err
			}
		}
		if os.Geteuid() == 0 {
			if err := os.Lchown(dst, h.Uid, h.Gid); err != nil {
				return err
			}
		}
		img.files[name] = h
	}
}

// imageCommand runs argv (an absolute path in the image, then arguments)
// as the container would: the image's environment with extra on top, as
// the image's user, in the image's working directory, with the image root
// as / when the test runs as root (chroot). Without root it runs the binary
// in place, as the test's user, with the data directory moved into the
// unpacked root.
func (img *image) command(argv []string, extra ...string) *exec.Cmd {
	env := append(slices.Clone(img.config.Env), extra...)
	if os.Geteuid() == 0 {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Path = argv[0] // resolved inside the chroot
		cmd.Env = env
		cmd.Dir = img.config.WorkingDir
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Chroot:     img.root,
			Credential: &syscall.Credential{Uid: nonroot, Gid: nonroot},
			Setpgid:    true,
		}
		return cmd
	}
	cmd := exec.Command(filepath.Join(img.root, argv[0]), argv[1:]...)
	cmd.Env = append(env, "SIGHTLINE_DATA_DIR="+filepath.Join(img.root, "data"))
	cmd.Dir = filepath.Join(img.root, img.config.WorkingDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// TestImage checks the image built from the Containerfile (the archive
// named by SIGHTLINE_TEST_IMAGE): its configuration (non-root user, /data
// volume, exposed port, entrypoint, a healthcheck command), its filesystem
// (a static binary owned by root, /data owned by the user, nothing else
// but the CA bundle and the user database), and its binary, run from the
// unpacked image as the container would run it: `serve --help`, then the
// image's default command serving /healthz, which the image's healthcheck
// command accepts, and refuses once the node has stopped.
func TestImage(t *testing.T) {
	archive := os.Getenv("SIGHTLINE_TEST_IMAGE")
	if archive == "" {
		t.Skip("SIGHTLINE_TEST_IMAGE unset (scripts/test builds the image with podman and saves it there)")
	}
	img := unpackImage(t, archive)
	cfg := img.config
	t.Logf("image: %d files, %.1f MiB uncompressed", len(img.files), float64(img.size)/(1<<20))

	const bin = "/usr/local/bin/sightline"
	if cfg.User != fmt.Sprintf("%d:%d", nonroot, nonroot) {
		t.Errorf("image user = %q, want %d:%d", cfg.User, nonroot, nonroot)
	}
	if _, ok := cfg.ExposedPorts["8080/tcp"]; !ok || len(cfg.ExposedPorts) != 1 {
		t.Errorf("exposed ports = %v, want 8080/tcp", cfg.ExposedPorts)
	}
	if _, ok := cfg.Volumes["/data"]; !ok || len(cfg.Volumes) != 1 {
		t.Errorf("volumes = %v, want /data", cfg.Volumes)
	}
	if diff := cmp.Diff([]string{bin}, cfg.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"serve"}, cfg.Cmd); diff != "" {
		t.Errorf("cmd (-want +got):\n%s", diff)
	}
	if cfg.WorkingDir != "/data" {
		t.Errorf("working dir = %q, want /data", cfg.WorkingDir)
	}
	for _, kv := range []string{"SIGHTLINE_ADDR=:8080", "SIGHTLINE_DATA_DIR=/data"} {
		if !slices.Contains(cfg.Env, kv) {
			t.Errorf("env %v lacks %s", cfg.Env, kv)
		}
	}
	if cfg.Healthcheck == nil || len(cfg.Healthcheck.Test) < 2 || cfg.Healthcheck.Test[0] != "CMD" {
		t.Fatalf("healthcheck = %+v, want an exec-form CMD (build with --format docker)", cfg.Healthcheck)
	}
	health := cfg.Healthcheck.Test[1:]

	// The filesystem: exactly these paths, owned as listed.
	var paths []string
	for p := range img.files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	want := []string{"data", "etc", "etc/group", "etc/passwd", "etc/ssl", "etc/ssl/certs", "etc/ssl/certs/ca-certificates.crt",
		"usr", "usr/local", "usr/local/bin", "usr/local/bin/sightline"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("image paths (-want +got):\n%s", diff)
	}
	for p, h := range img.files {
		owner := 0
		if p == "data" {
			owner = nonroot
		}
		if h.Uid != owner || h.Gid != owner {
			t.Errorf("/%s is owned by %d:%d, want %d:%d", p, h.Uid, h.Gid, owner, owner)
		}
		if os.FileMode(h.Mode)&0o022 != 0 && p != "data" {
			t.Errorf("/%s has mode %o: writable by others than root", p, h.Mode)
		}
	}
	if h := img.files["usr/local/bin/sightline"]; h == nil || h.Mode&0o111 != 0o111 {
		t.Fatalf("%s is missing or not executable by all", bin)
	}
	ef, err := elf.Open(filepath.Join(img.root, bin))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: not a static binary", bin)
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s links %v: not a static binary", bin, libs)
	}
	ef.Close()
	for _, s := range []string{"passwd", "group"} {
		b, _ := os.ReadFile(filepath.Join(img.root, "etc", s))
		if !strings.Contains(string(b), fmt.Sprintf("nonroot:x:%d:", nonroot)) {
			t.Errorf("/etc/%s has no nonroot entry with id %d:\n%s", s, nonroot, b)
		}
	}

	// serve --help, from the image.
	out, err := img.command([]string{bin, "serve", "--help"}).CombinedOutput()
	if err != nil {
		t.Fatalf("sightline serve --help: %v\n%s", err, out)
	}
	for _, flag := range []string{"-addr", "-data-dir", "-role"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("sightline serve --help does not mention %s:\n%s", flag, out)
		}
	}

	// The image's default command (entrypoint + cmd), on a port of this
	// test: the same environment variable configures serve and the
	// healthcheck, as in the container.
	addr := freeAddr(t)
	listen := "SIGHTLINE_ADDR=" + addr
	logPath := filepath.Join(t.TempDir(), "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	serve := img.command(append(slices.Clone(cfg.Entrypoint), cfg.Cmd...), listen)
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		t.Fatalf("start the image's command: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = syscall.Kill(-serve.Process.Pid, syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-serve.Process.Pid, syscall.SIGKILL)
			return errors.Join(errors.New("no exit 30s after SIGTERM"), <-done)
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- serve log:\n%s", b)
		}
	})
	waitUntil(t, nil, 60*time.Second, func() (bool, string) {
		select {
		case err := <-done:
			done <- err
			b, _ := os.ReadFile(logPath)
			t.Fatalf("serve exited (%v) before /healthz answered:\n%s", err, b)
		default:
		}
		return httpOK("http://" + addr + "/healthz")
	})
	how := "as the test's user, /data moved into the unpacked image"
	if os.Geteuid() == 0 {
		how = fmt.Sprintf("chrooted into the unpacked image as uid %d", nonroot)
	}
	t.Logf("%q serves /healthz on %s (%s)", append(slices.Clone(cfg.Entrypoint), cfg.Cmd...), addr, how)
	if out, err := img.command(health, listen).CombinedOutput(); err != nil {
		t.Errorf("healthcheck %q against a serving node: %v\n%s", health, err, out)
	}
	// The node wrote its state into the volume, as the nonroot user.
	if entries, err := os.ReadDir(filepath.Join(img.root, "data")); err != nil || len(entries) == 0 {
		t.Errorf("/data after serving: %d entries, %v; want the node's files", len(entries), err)
	}
	if err := stop(); err != nil {
		t.Errorf("serve after SIGTERM: %v, want a clean exit", err)
	}
	out, err = img.command(health, listen).CombinedOutput()
	if err == nil {
		t.Errorf("healthcheck %q succeeded with the node stopped:\n%s", health, out)
	}
	t.Logf("healthcheck %q: exit 0 while serving; after SIGTERM: %v: %s", health, err, strings.TrimSpace(string(out)))
}
