// Command testsummary reads `go test -json` output on stdin, prints the
// failures with their output and a count of passes, failures and skips, and
// exits non-zero when any test failed or skipped: scripts/test runs every
// integration suite with its server, so a skip means a missing server.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type testEvent struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	outputs := map[string]*strings.Builder{}
	var failed, skipped []string
	passed := 0
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev testEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			fmt.Println(sc.Text()) // build errors are plain text
			continue
		}
		key := ev.Package + " " + ev.Test
		switch ev.Action {
		case "output":
			b := outputs[key]
			if b == nil {
				b = &strings.Builder{}
				outputs[key] = b
			}
			if b.Len() < 64<<10 {
				b.WriteString(ev.Output)
			}
		case "pass":
			if ev.Test != "" {
				passed++
			}
		case "fail":
			failed = append(failed, key)
		case "skip":
			if ev.Test != "" {
				skipped = append(skipped, key)
			}
		}
	}
	sort.Strings(failed)
	for _, k := range failed {
		fmt.Printf("--- FAIL: %s\n%s\n", k, outputs[k])
	}
	for _, k := range skipped {
		fmt.Printf("--- SKIP: %s\n%s", k, lastLines(outputs[k], 3))
	}
	fmt.Printf("tests: %d passed, %d failed, %d skipped\n", passed, len(failed), len(skipped))
	if len(failed) > 0 || len(skipped) > 0 {
		if len(skipped) > 0 {
			fmt.Println("a skipped test means its server or tool was not started: scripts/test must run every suite")
		}
		os.Exit(1)
	}
}

func lastLines(b *strings.Builder, n int) string {
	if b == nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
