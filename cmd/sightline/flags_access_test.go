package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/api"
	"github.com/sightline/sightline/internal/app"
)

func TestAccessFlags(t *testing.T) {
	type got struct {
		Access    app.AccessConfig
		Admission app.AdmissionConfig
	}
	defaults := got{Admission: app.AdmissionConfig{MaxInFlight: app.DefaultMaxInFlight(), Wait: 5 * time.Millisecond, Interval: 100 * time.Millisecond,
		MaxInFlightEvents: app.DefaultMaxInFlightEvents(), EventsWait: 250 * time.Millisecond}}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want got
	}{
		{name: "defaults", want: defaults},
		{
			name: "flags",
			args: []string{"--api-keys-file", "/etc/sightline/keys", "--insecure-open", "--tls-cert", "c.pem", "--tls-key", "k.pem",
				"--max-inflight", "64", "--admission-wait", "2ms", "--admission-interval", "50ms", "--admission-target", "8ms", "--max-inflight-events", "-1", "--admission-wait-events", "1s"},
			want: got{
				Access:    app.AccessConfig{KeysFile: "/etc/sightline/keys", InsecureOpen: true, TLSCert: "c.pem", TLSKey: "k.pem"},
				Admission: app.AdmissionConfig{MaxInFlight: 64, Wait: 2 * time.Millisecond, Interval: 50 * time.Millisecond, Target: 8 * time.Millisecond, MaxInFlightEvents: -1, EventsWait: time.Second},
			},
		},
		{
			name: "environment",
			env:  map[string]string{"SIGHTLINE_API_KEYS_FILE": "/k", "SIGHTLINE_INSECURE_OPEN": "true", "SIGHTLINE_MAX_INFLIGHT": "3"},
			want: func() got {
				g := defaults
				g.Access = app.AccessConfig{KeysFile: "/k", InsecureOpen: true}
				g.Admission.MaxInFlight = 3
				return g
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := newFlagSet("serve", "test")
			fs.SetOutput(io.Discard)
			cfg, _ := nodeFlags(fs)
			if err := parse(fs, tt.args); err != nil {
				t.Fatalf("parse(%q) = %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, got{cfg.Access, cfg.Admission}, cmp.AllowUnexported(app.AccessConfig{})); diff != "" {
				t.Errorf("parse(%q) with env %v (-want +got):\n%s", tt.args, tt.env, diff)
			}
		})
	}
}

// TestKeysCommand: the key printed is accepted by the line printed, which
// parses as a keys file.
func TestKeysCommand(t *testing.T) {
	var out, msg bytes.Buffer
	if err := makeKey([]string{"--name", "grafana", "--scopes", "read, admin"}, &out, &msg); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], api.KeyPrefix) {
		t.Fatalf("keys printed %q, want the key and its line", out.String())
	}
	keys, err := api.ParseKeys(strings.NewReader(lines[1]))
	if err != nil {
		t.Fatalf("ParseKeys(%q) = %v", lines[1], err)
	}
	if want := []api.Scope{api.ScopeRead, api.ScopeAdmin}; keys[0].Name != "grafana" || !cmp.Equal(keys[0].Scopes, want) || keys[0].Hash != api.HashKey(lines[0]) {
		t.Errorf("line %q: %+v, want grafana with read,admin and the hash of the key", lines[1], keys[0])
	}
	if strings.Contains(msg.String(), lines[0]) {
		t.Errorf("the key is in the messages too: %q", msg.String())
	}
	for _, args := range [][]string{{"--name", "x"}, {"--name", "x", "--scopes", "write"}, {"--scopes", "read"}} {
		if err := makeKey(args, io.Discard, io.Discard); err == nil {
			t.Errorf("keys %q = nil error, want one", args)
		}
	}
}
