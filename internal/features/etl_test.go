package features

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline/internal/event"
)

// collectUsers is a put function that records what it is given and refuses
// users whose segment is "refuse".
type collectUsers struct{ got []event.User }

func (c *collectUsers) put(_ context.Context, u event.User) error {
	if u.Segment == "refuse" {
		return errors.New("refused by store")
	}
	c.got = append(c.got, u)
	return nil
}

func TestLoadUsers(t *testing.T) {
	long := `{"user_id":"long","segment":"` + strings.Repeat("x", MaxLineLen) + `"}`
	tests := []struct {
		name      string
		in        string
		want      []event.User
		wantRes   LoadResult
		wantLines []int // lines of Errors
	}{
		{
			name:    "good lines",
			in:      `{"user_id":"u1","age_bucket":"25-34","segment":"sports","region":"eu","device":"ios","attributes":{"plan":"pro"},"updated_at":"2026-03-01T12:30:00.123456789Z"}` + "\n" + `{"user_id":"u2"}` + "\n",
			want:    []event.User{{ID: "u1", AgeBucket: "25-34", Segment: "sports", Region: "eu", Device: "ios", Attrs: map[string]string{"plan": "pro"}, UpdatedAt: t0}, {ID: "u2"}},
			wantRes: LoadResult{Loaded: 2},
		},
		{
			name:    "no final newline, CRLF, BOM",
			in:      "\xef\xbb\xbf{\"user_id\":\"u1\"}\r\n{\"user_id\":\"u2\"}",
			want:    []event.User{{ID: "u1"}, {ID: "u2"}},
			wantRes: LoadResult{Loaded: 2},
		},
		{
			name:    "blank lines skipped but counted in line numbers",
			in:      "\n  \n{\"user_id\":\"u1\"}\n\t\r\n\n{\"user_id\":5}\n\n",
			want:    []event.User{{ID: "u1"}},
			wantRes: LoadResult{Loaded: 1, Rejected: 1}, wantLines: []int{6},
		},
		{name: "empty input", in: "", wantRes: LoadResult{}},
		{
			name: "bad lines are rejected and loading goes on",
			in: strings.Join([]string{
				`{"user_id":"u1"`,                     // 1 malformed
				`{"user_id":"u2","colour":"blue"}`,    // 2 unknown field
				`{"segment":"news"}`,                  // 3 missing user_id
				`{"user_id":"u3"}`,                    // 4 good
				long,                                  // 5 over-long
				`{"user_id":"u4"} {"user_id":"u5"}`,   // 6 two objects
				`[{"user_id":"u6"}]`,                  // 7 not an object
				`null`,                                // 8 not an object
				`{"user_id":"u7","segment":"refuse"}`, // 9 refused by put
				`{"user_id":"` + strings.Repeat("u", event.MaxIDLen+1) + `"}`, // 10 id too long
				`{"user_id":"u8","updated_at":"yesterday"}`,                   // 11 bad time
				`{"user_id":"u9"}`, // 12 good
			}, "\n"),
			want:      []event.User{{ID: "u3"}, {ID: "u9"}},
			wantRes:   LoadResult{Loaded: 2, Rejected: 10},
			wantLines: []int{1, 2, 3, 5, 6, 7, 8, 9, 10, 11},
		},
		{
			name:      "over-long last line without newline",
			in:        "{\"user_id\":\"u1\"}\n" + long,
			want:      []event.User{{ID: "u1"}},
			wantRes:   LoadResult{Loaded: 1, Rejected: 1},
			wantLines: []int{2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collectUsers
			res, err := LoadUsers(t.Context(), strings.NewReader(tt.in), c.put)
			if err != nil {
				t.Fatalf("LoadUsers() error = %v", err)
			}
			var lines []int
			for _, e := range res.Errors {
				lines = append(lines, e.Line)
				if e.Err == "" {
					t.Errorf("LoadUsers() line %d error is empty", e.Line)
				}
			}
			res.Errors = nil
			if diff := cmp.Diff(tt.wantRes, res); diff != "" {
				t.Errorf("LoadUsers() result mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLines, lines); diff != "" {
				t.Errorf("LoadUsers() error lines mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, c.got); diff != "" {
				t.Errorf("LoadUsers() stored users mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadUsersLineLimit(t *testing.T) {
	// The limit counts the line without its terminator.
	for _, tt := range []struct {
		pad  int
		want int
	}{{0, 1}, {1, 0}} {
		line := `{"user_id":"u1"}`
		line += strings.Repeat(" ", MaxLineLen-len(line)+tt.pad)
		var c collectUsers
		res, err := LoadUsers(t.Context(), strings.NewReader(line+"\n"), c.put)
		if err != nil || res.Loaded != tt.want {
			t.Errorf("LoadUsers(line of %d bytes) Loaded = %d, %v, want %d", len(line), res.Loaded, err, tt.want)
		}
	}
}

func TestLoadUsersErrorsDoNotLeakValues(t *testing.T) {
	const secret = "alice@example.com"
	in := strings.Join([]string{
		`{"user_id":"` + secret + `","segment":5}`,
		`{"user_id":"` + secret + `","region":"` + strings.Repeat("r", 200) + `"}`,
		`{"user_id":"` + secret + `"`,
		`{"user_id":"` + secret + `","segment":"refuse"}`,
		`{"user_id":"` + secret + `"} "` + secret + `"`,
	}, "\n")
	var c collectUsers
	res, err := LoadUsers(t.Context(), strings.NewReader(in), c.put)
	if err != nil || res.Rejected != 5 {
		t.Fatalf("LoadUsers() Rejected = %d, %v, want 5, nil", res.Rejected, err)
	}
	for _, e := range res.Errors {
		if strings.Contains(e.Err, "alice") {
			t.Errorf("LoadUsers() line %d error %q contains the user id", e.Line, e.Err)
		}
	}
}

func TestLoadUsersErrorCap(t *testing.T) {
	var b strings.Builder
	for i := range 250 {
		fmt.Fprintf(&b, "{\"user_id\":\"u%d\"}\nnot json\n", i)
	}
	var c collectUsers
	res, err := LoadUsers(t.Context(), strings.NewReader(b.String()), c.put)
	if err != nil {
		t.Fatal(err)
	}
	if res.Loaded != 250 || res.Rejected != 250 || len(res.Errors) != MaxLineErrors {
		t.Errorf("LoadUsers() = %d loaded, %d rejected, %d errors; want 250, 250, %d", res.Loaded, res.Rejected, len(res.Errors), MaxLineErrors)
	}
	if last := res.Errors[len(res.Errors)-1].Line; last != 2*MaxLineErrors {
		t.Errorf("LoadUsers() last kept error is line %d, want %d", last, 2*MaxLineErrors)
	}
}

func TestLoadUsersCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	put := func(context.Context, event.User) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	}
	in := strings.Repeat("{\"user_id\":\"u\"}\n", 10)
	res, err := LoadUsers(ctx, strings.NewReader(in), put)
	if !errors.Is(err, context.Canceled) || res.Loaded != 3 {
		t.Errorf("LoadUsers(canceled after 3) = %d loaded, %v; want 3, %v", res.Loaded, err, context.Canceled)
	}
}

func TestLoadUsersReadError(t *testing.T) {
	errRead := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("{\"user_id\":\"u1\"}\n{\"user_id\":\"u2\"}\n{\"user"), &failingRW{err: errRead})
	var c collectUsers
	res, err := LoadUsers(t.Context(), r, c.put)
	if !errors.Is(err, errRead) || res.Loaded != 2 {
		t.Errorf("LoadUsers(failing reader) = %d loaded, %v; want 2, %v", res.Loaded, err, errRead)
	}
}

func TestLoadItems(t *testing.T) {
	m := newTestMemory(t, Config{})
	in := strings.Join([]string{
		`{"item_id":"i1","category":"shoes","tags":["a","b"],"available":true}`,
		`{"item_id":"i2"}`,
		`{"item_id":"i3","category":"hats","price":3}`,
		``,
		`{"item_id":"i4","category":"hats","available":false}`,
	}, "\n")
	res, err := LoadItems(t.Context(), strings.NewReader(in), m.PutItem)
	if err != nil {
		t.Fatal(err)
	}
	want := LoadResult{Loaded: 2, Rejected: 2, Errors: []LineError{
		{Line: 2, Err: "invalid record: category: missing required field"},
		{Line: 3, Err: `invalid json: json: unknown field "price"`},
	}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("LoadItems() result mismatch (-want +got):\n%s", diff)
	}
	if got, ok, err := m.Item(t.Context(), "i1"); err != nil || !ok || !cmp.Equal(got, event.Item{ID: "i1", Category: "shoes", Tags: []string{"a", "b"}, Available: true}) {
		t.Errorf("Item(i1) = %+v, %v, %v after LoadItems", got, ok, err)
	}
	if _, items, err := m.Counts(t.Context()); items != 2 || err != nil {
		t.Errorf("Counts() items = %d, %v after LoadItems, want 2", items, err)
	}
}

func TestLoadUsersIntoMemory(t *testing.T) {
	m := newTestMemory(t, Config{})
	res, err := LoadUsers(t.Context(), strings.NewReader("{\"user_id\":\"u1\",\"segment\":\"news\"}\n{\"user_id\":\"\"}\n"), m.PutUser)
	if err != nil || res.Loaded != 1 || res.Rejected != 1 {
		t.Fatalf("LoadUsers() = %+v, %v", res, err)
	}
	if u, ok, _ := m.User(t.Context(), "u1"); !ok || u.Segment != "news" || u.UpdatedAt.IsZero() {
		t.Errorf("User(u1) = %+v, %v after LoadUsers", u, ok)
	}
}

func FuzzLoadUsers(f *testing.F) {
	for _, s := range []string{
		"",
		"{\"user_id\":\"u1\"}\n",
		"{\"user_id\":\"u1\",\"age_bucket\":\"18-24\",\"attributes\":{\"a\":\"b\"},\"updated_at\":\"2026-01-01T00:00:00Z\"}\r\n\n",
		"\xef\xbb\xbf{\"user_id\":\"u1\"}",
		"{\"user_id\":\"u1\"\n{}\nnull\n[1]\n{\"x\":1}",
		"{\"user_id\":\"u1\"} {\"user_id\":\"u2\"}",
		"{\"user_id\":\"\\u0000\"}\n\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var stored []event.User
		put := func(_ context.Context, u event.User) error {
			if err := u.Validate(); err != nil {
				t.Errorf("put(%+v) got a user that fails Validate: %v", u, err)
			}
			stored = append(stored, u)
			return nil
		}
		res, err := LoadUsers(t.Context(), strings.NewReader(in), put)
		if err != nil {
			t.Fatalf("LoadUsers() error = %v on an in-memory reader", err)
		}
		lines := strings.Count(in, "\n") + 1
		if res.Loaded != len(stored) || res.Loaded+res.Rejected > lines {
			t.Errorf("LoadUsers() = %d loaded, %d rejected; put called %d times, input has %d lines", res.Loaded, res.Rejected, len(stored), lines)
		}
		if want := min(res.Rejected, MaxLineErrors); len(res.Errors) != want {
			t.Errorf("LoadUsers() kept %d errors for %d rejections, want %d", len(res.Errors), res.Rejected, want)
		}
		prev := 0
		for _, e := range res.Errors {
			if e.Line <= prev || e.Line > lines || e.Err == "" {
				t.Errorf("LoadUsers() error %+v after line %d of %d", e, prev, lines)
			}
			prev = e.Line
		}
	})
}
