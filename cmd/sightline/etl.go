package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/sightline/sightline/client"
)

func runETL(ctx context.Context, args []string) error {
	fs := newFlagSet("etl", "Batch-load user attributes (the offline path) from an NDJSON file, one user per line:\n{\"user_id\":\"u1\",\"age_bucket\":\"25-34\",\"segment\":\"regular\",\"region\":\"eu\",\"device\":\"ios\"}\n\nusage: sightline etl [flags] FILE.ndjson")
	target := fs.String("target", "http://127.0.0.1:8080", "base URL of the node")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want exactly one NDJSON file")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := client.New(*target)
	if err != nil {
		return err
	}
	res, err := c.ImportUsers(ctx, f)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(b))
	if res.Rejected > 0 {
		return fmt.Errorf("%d lines rejected", res.Rejected)
	}
	return nil
}
