package telemetry

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

func testRedactor(t testing.TB) *Redactor {
	t.Helper()
	r, err := NewRedactor([]byte("test-key"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPseudonymize(t *testing.T) {
	r := testRedactor(t)
	a, b := r.Pseudonymize("alice"), r.Pseudonymize("alice")
	if a != b {
		t.Errorf("Pseudonymize(alice) = %q then %q, want deterministic", a, b)
	}
	if !regexp.MustCompile(`^u_[0-9a-f]{16}$`).MatchString(a) {
		t.Errorf("Pseudonymize(alice) = %q, want u_ + 16 hex", a)
	}
	if c := r.Pseudonymize("bob"); c == a {
		t.Errorf("Pseudonymize(bob) = Pseudonymize(alice) = %q", c)
	}
	other, _ := NewRedactor([]byte("other-key"))
	if c := other.Pseudonymize("alice"); c == a {
		t.Errorf("Pseudonymize(alice) is the same under two keys: %q", c)
	}
	// Known answer: HMAC-SHA256("test-key", "alice"), first 8 bytes.
	m := hmac.New(sha256.New, []byte("test-key"))
	m.Write([]byte("alice"))
	if want := "u_" + hex.EncodeToString(m.Sum(nil)[:8]); a != want {
		t.Errorf("Pseudonymize(alice) = %q, want %q", a, want)
	}
	if got := r.Pseudonymize(""); got != "" {
		t.Errorf("Pseudonymize(\"\") = %q, want empty", got)
	}
}

// TestPseudonymizePooled checks that the pooled MAC states give the known
// answer whatever was hashed before them, concurrently, long ids included,
// and that a pseudonym costs one allocation (its string).
func TestPseudonymizePooled(t *testing.T) {
	r := testRedactor(t)
	want := func(id string) string {
		m := hmac.New(sha256.New, []byte("test-key"))
		m.Write([]byte(id))
		return "u_" + hex.EncodeToString(m.Sum(nil)[:8])
	}
	ids := []string{"alice", "bob", strings.Repeat("x", 300), "u000042", "é"}
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				id := ids[(g+i)%len(ids)]
				if got, w := r.Pseudonymize(id), want(id); got != w {
					t.Errorf("Pseudonymize(%.10q) = %q, want %q", id, got, w)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, func() { r.Pseudonymize("u000042") }); n > 1 {
		t.Errorf("Pseudonymize allocates %v times, want at most 1", n)
	}
	if _, err := NewRedactor(nil); !errors.Is(err, ErrNoPseudonymKey) {
		t.Errorf("NewRedactor(nil) error = %v, want ErrNoPseudonymKey", err)
	}
}

func TestRedactString(t *testing.T) {
	r := testRedactor(t)
	tests := []struct{ in, want string }{
		{"recommend served", "recommend served"},
		{"mail alice.smith+x@mail.example.co.uk now", "mail [email] now"},
		{"from 192.168.1.20:8080", "from [ip]:8080"},
		{"peer [2001:db8::42]:443", "peer [[ip]]:443"},
		{"v6 fe80::1 and ::ffff:10.0.0.1", "v6 [ip] and [ip]"},
		{"call +1 (415) 555-0100.", "call [phone]."},
		{"call +44 20 7946 0958", "call [phone]"},
		{"call 415-555-0100 or 415.555.0100 or 4155550100", "call [phone] or [phone] or [phone]"},
		// Things that look numeric but are not personal data stay.
		{"at 10:30:45 took 12.5ms", "at 10:30:45 took 12.5ms"},
		{"date 2024-01-15", "date 2024-01-15"},
		{"trace 4bf92f3577b34da6a3ce929d0e0e4736", "trace 4bf92f3577b34da6a3ce929d0e0e4736"},
		{"user u_0123456789abcdef", "user u_0123456789abcdef"},
		{"item-1234567890", "item-1234567890"},
		{"999.1.1.1 is no address", "999.1.1.1 is no address"},
	}
	for _, tt := range tests {
		if got := r.RedactString(tt.in); got != tt.want {
			t.Errorf("RedactString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

type profile struct {
	UserID string            `json:"user_id"`
	Email  string            `json:"email"`
	Notes  []string          `json:"notes"`
	Attrs  map[string]string `json:"attrs"`
	Age    int               `json:"age"`
}

type secretID string

func (s secretID) LogValue() slog.Value { return slog.StringValue(string(s)) }

func TestRedactAttr(t *testing.T) {
	r := testRedactor(t)
	alice := r.Pseudonymize("alice")
	tests := []struct {
		name string
		in   slog.Attr
		want slog.Attr
	}{
		{"user_id", slog.String("user_id", "alice"), slog.String("user_id", alice)},
		{"userId", slog.String("userId", "alice"), slog.String("userId", alice)},
		{"uid int", slog.Int("uid", 42), slog.String("uid", r.Pseudonymize("42"))},
		{"log valuer user id", slog.Any("user_id", secretID("alice")), slog.String("user_id", alice)},
		{"email key", slog.String("email", "a@b.co"), slog.String("email", Redacted)},
		{"phone key", slog.String("phone_number", "x"), slog.String("phone_number", Redacted)},
		{"ip key", slog.String("client_ip", "10.1.1.1"), slog.String("client_ip", Redacted)},
		{"authorization", slog.String("Authorization", "Bearer x"), slog.String("Authorization", Redacted)},
		{"password int", slog.Int("password", 1234), slog.String("password", Redacted)},
		{"suffix", slog.String("contact_email", "a@b.co"), slog.String("contact_email", Redacted)},
		{"value scrubbed", slog.String("msg2", "to a@b.co"), slog.String("msg2", "to [email]")},
		{"plain kept", slog.String("variant", "B"), slog.String("variant", "B")},
		{"number kept", slog.Float64("score", 0.93), slog.Float64("score", 0.93)},
		{"error", slog.Any("err", errors.New("no profile for a@b.co from 10.0.0.7")), slog.String("err", "no profile for [email] from [ip]")},
		{"nested group", slog.Group("req", slog.String("user_id", "alice"), slog.Group("client", slog.String("ip", "10.0.0.7"), slog.String("ua", "curl at 10.0.0.7"))),
			slog.Group("req", slog.String("user_id", alice), slog.Group("client", slog.String("ip", Redacted), slog.String("ua", "curl at [ip]")))},
		{"string slice", slog.Any("items", []string{"i1", "x@y.io"}), slog.Any("items", []string{"i1", "[email]"})},
		{"float slice kept", slog.Any("scores", []float64{0.5, 0.25}), slog.Any("scores", []float64{0.5, 0.25})},
		{"struct", slog.Any("profile", profile{UserID: "alice", Email: "a@b.co", Notes: []string{"call +1 415 555 0100"},
			Attrs: map[string]string{"phone": "1", "segment": "new"}, Age: 30}),
			slog.Any("profile", map[string]any{"user_id": alice, "email": Redacted, "notes": []any{"call [phone]"},
				"attrs": map[string]any{"phone": Redacted, "segment": "new"}, "age": float64(30)})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := render(r.RedactAttr(tt.in)), render(tt.want)
			if got != want {
				t.Errorf("RedactAttr(%v) = %s, want %s", tt.in, got, want)
			}
		})
	}
}

// render returns a as the JSON handler writes it.
func render(a slog.Attr) string {
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{}
			}
			return a
		},
	})).LogAttrs(context.Background(), slog.LevelInfo, "", a)
	return b.String()
}

func TestRedactKeyValue(t *testing.T) {
	r := testRedactor(t)
	tests := []struct{ in, want attribute.KeyValue }{
		{attribute.String("enduser.id", "alice"), attribute.String("enduser.id", r.Pseudonymize("alice"))},
		{attribute.Int("user_id", 7), attribute.String("user_id", r.Pseudonymize("7"))},
		{attribute.String("network.peer.address", "10.0.0.1"), attribute.String("network.peer.address", Redacted)},
		{attribute.String("sightline.user.hash", "u_0123456789abcdef"), attribute.String("sightline.user.hash", "u_0123456789abcdef")},
		{attribute.String("url.query", "email=a@b.co"), attribute.String("url.query", "email=[email]")},
		{attribute.Int("http.response.status_code", 200), attribute.Int("http.response.status_code", 200)},
	}
	for _, tt := range tests {
		if got := r.RedactKeyValue(tt.in); got != tt.want {
			t.Errorf("RedactKeyValue(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzRedactString(f *testing.F) {
	for _, s := range []string{"", "a@b.co", "+1 415 555 0100", "10.0.0.1", "fe80::1", "12:30:00", "x@y@z.com", "::::"} {
		f.Add(s)
	}
	r := testRedactor(f)
	f.Fuzz(func(t *testing.T, s string) {
		got := r.RedactString(s)
		if m := emailRE.FindString(got); m != "" {
			t.Errorf("RedactString(%q) = %q, still contains email %q", s, got, m)
		}
	})
}

// BenchmarkPseudonymize is the pseudonym of a user id, once per
// recommendation: pooled (Pseudonymize) against a MAC made per call (what
// it did before issue 16).
func BenchmarkPseudonymize(b *testing.B) {
	r := testRedactor(b)
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Pseudonymize("u000042")
		}
	})
	b.Run("per-call", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := hmac.New(sha256.New, r.key)
			m.Write([]byte("u000042"))
			var sum [sha256.Size]byte
			var out [18]byte
			out[0], out[1] = 'u', '_'
			hex.Encode(out[2:], m.Sum(sum[:0])[:8])
			_ = string(out[:])
		}
	})
}
