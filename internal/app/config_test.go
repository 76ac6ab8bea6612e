package app

import (
	"os"
	"strings"
	"testing"
)

func TestConfigDefaultsAddr(t *testing.T) {
	host, _ := os.Hostname()
	tests := []struct {
		name, addr string
		wantName   string // NodeName after defaults
		wantErr    string // in the error; "" for none
	}{
		{name: "default", addr: "", wantName: host + ":8080"},
		{name: "host and port", addr: "127.0.0.1:9090", wantName: host + ":9090"},
		{name: "port only", addr: ":7070", wantName: host + ":7070"},
		{name: "ipv6", addr: "[::1]:8081", wantName: host + ":8081"},
		{name: "ephemeral port", addr: "127.0.0.1:0", wantName: host + ":0"},
		{name: "no colon", addr: "localhost", wantErr: `listen address "localhost": want host:port`},
		{name: "bare port number", addr: "8080", wantErr: `listen address "8080": want host:port`},
		{name: "ipv6 without brackets", addr: "::1:8080", wantErr: `listen address "::1:8080"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Addr: tt.addr}
			err := c.defaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("defaults() with Addr %q = %v, want an error containing %q", tt.addr, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("defaults() with Addr %q = %v, want nil", tt.addr, err)
			}
			if c.NodeName != tt.wantName {
				t.Errorf("defaults() with Addr %q: NodeName = %q, want %q", tt.addr, c.NodeName, tt.wantName)
			}
		})
	}
	c := Config{Addr: "localhost", NodeName: "named"}
	if err := c.defaults(); err == nil {
		t.Errorf("defaults() with Addr %q and a NodeName = nil, want an error (the address cannot be listened on)", c.Addr)
	}
}

func TestConfigDefaultsDecisionRing(t *testing.T) {
	for _, in := range []int{0, -1} {
		c := Config{DecisionRing: in}
		if err := c.defaults(); err != nil {
			t.Fatalf("defaults() = %v", err)
		}
		if c.DecisionRing != 50_000 {
			t.Errorf("defaults() with DecisionRing %d: DecisionRing = %d, want 50000", in, c.DecisionRing)
		}
	}
	c := Config{DecisionRing: 7}
	if err := c.defaults(); err != nil || c.DecisionRing != 7 {
		t.Errorf("defaults() with DecisionRing 7 = %v, DecisionRing %d; want nil, 7", err, c.DecisionRing)
	}
}
