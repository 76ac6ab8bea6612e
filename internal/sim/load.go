package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/sightline/sightline/client"
)

// Errors returned by this package. Callers match them with errors.Is.
var (
	// ErrImportRejected reports that the server refused some lines of an
	// import; the error says how many.
	ErrImportRejected = errors.New("import rejected lines")
	// ErrInvalidConfig reports a TrafficConfig with an out-of-range field.
	ErrInvalidConfig = errors.New("invalid traffic config")
	// ErrAlreadyRun reports a second call of [Traffic.Run].
	ErrAlreadyRun = errors.New("traffic already run")
)

// errLoadAborted unblocks an NDJSON writer whose import has returned.
var errLoadAborted = errors.New("import returned before the upload ended")

// WriteUsersNDJSON writes every user as one JSON object per line, the format
// of the users NDJSON import (event.User's JSON).
func (w *World) WriteUsersNDJSON(out io.Writer) error {
	return writeNDJSON(out, w.users)
}

// WriteItemsNDJSON writes every item as one JSON object per line, the format
// of the items NDJSON import (event.Item's JSON).
func (w *World) WriteItemsNDJSON(out io.Writer) error {
	return writeNDJSON(out, w.items)
}

func writeNDJSON[T any](out io.Writer, vs []T) error {
	bw := bufio.NewWriterSize(out, 64<<10)
	enc := json.NewEncoder(bw) // Encode adds the newline
	for i := range vs {
		if err := enc.Encode(&vs[i]); err != nil {
			return fmt.Errorf("write ndjson: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write ndjson: %w", err)
	}
	return nil
}

// Load imports the world into the node behind c: first the items, then the
// users, each streamed as NDJSON through a pipe. It fails with
// [ErrImportRejected] when the server refuses any line.
func (w *World) Load(ctx context.Context, c *client.Client) error {
	if err := importStream(ctx, "items", w.WriteItemsNDJSON, c.ImportItems); err != nil {
		return err
	}
	return importStream(ctx, "users", w.WriteUsersNDJSON, c.ImportUsers)
}

func importStream(ctx context.Context, what string,
	write func(io.Writer) error,
	upload func(context.Context, io.Reader) (*client.ImportResult, error),
) error {
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() {
		werr = write(pw)
		pw.CloseWithError(werr) // nil closes with io.EOF
	})
	res, err := upload(ctx, pr)
	pr.CloseWithError(errLoadAborted) // unblock the writer if upload stopped early
	wg.Wait()
	if err != nil {
		return fmt.Errorf("import %s: %w", what, err)
	}
	if werr != nil && !errors.Is(werr, errLoadAborted) {
		return fmt.Errorf("import %s: %w", what, werr)
	}
	if res.Rejected > 0 {
		first := ""
		if len(res.Errors) > 0 {
			first = fmt.Sprintf(" (line %d: %s)", res.Errors[0].Line, res.Errors[0].Error)
		}
		return fmt.Errorf("import %s: %w: %d of %d%s", what, ErrImportRejected,
			res.Rejected, res.Rejected+res.Imported, first)
	}
	return nil
}
