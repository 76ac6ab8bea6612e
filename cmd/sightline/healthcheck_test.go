package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthzURL(t *testing.T) {
	tests := []struct {
		addr, want string
		wantErr    bool
	}{
		{addr: "127.0.0.1:8080", want: "http://127.0.0.1:8080/healthz"},
		{addr: ":8080", want: "http://127.0.0.1:8080/healthz"},
		{addr: "0.0.0.0:9000", want: "http://127.0.0.1:9000/healthz"},
		{addr: "[::]:9000", want: "http://127.0.0.1:9000/healthz"},
		{addr: "[::1]:9000", want: "http://[::1]:9000/healthz"},
		{addr: "node-1.internal:8080", want: "http://node-1.internal:8080/healthz"},
		{addr: "8080", wantErr: true},
	}
	for _, tt := range tests {
		got, err := healthzURL(tt.addr)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("healthzURL(%q) = %q, %v; want %q, error %v", tt.addr, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	_, port, _ := net.SplitHostPort(addr)

	// A closed port: listen, note the address, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	tests := []struct {
		name    string
		args    []string
		env     string // SIGHTLINE_ADDR, if set
		status  int
		wantErr string // "" means success
	}{
		{name: "addr", args: []string{"--addr", addr}, status: http.StatusOK},
		{name: "unspecified host", args: []string{"--addr", ":" + port}, status: http.StatusOK},
		{name: "SIGHTLINE_ADDR", env: "0.0.0.0:" + port, status: http.StatusOK},
		{name: "url", args: []string{"--url", srv.URL + "/healthz"}, status: http.StatusOK},
		{name: "unhealthy", args: []string{"--addr", addr}, status: http.StatusServiceUnavailable, wantErr: "503"},
		{name: "wrong path", args: []string{"--url", srv.URL + "/nothing"}, status: http.StatusOK, wantErr: "404"},
		{name: "nothing listening", args: []string{"--addr", closed, "--timeout", "1s"}, status: http.StatusOK, wantErr: "connection refused"},
		{name: "bad addr", args: []string{"--addr", "8080"}, status: http.StatusOK, wantErr: "--addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("SIGHTLINE_ADDR", tt.env)
			}
			status = tt.status
			err := runHealthcheck(t.Context(), tt.args)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("runHealthcheck(%q) = %v, want success", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("runHealthcheck(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestHealthcheckRegistered(t *testing.T) {
	for _, c := range commands {
		if c.name == "healthcheck" {
			return
		}
	}
	t.Error("no healthcheck command in commands")
}
