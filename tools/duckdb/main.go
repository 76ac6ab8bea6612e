// Command duckdb runs one SQL query with DuckDB (the duckdb-go bindings) and
// prints each result row as a JSON object on its own line, with a first line
// naming the result's columns and their DuckDB types. The decision log's
// tests run it on the Parquet files the writer made, to prove a standard
// tool reads them; it lives in its own module so the main module does not
// depend on cgo or on DuckDB.
//
// Usage:
//
//	duckdb 'SELECT ... FROM read_parquet(...)'
//
// The first output line is {"columns":[{"name":..,"type":..},..]}; each
// following line is {"row":{column: value,..}}. Values are what
// database/sql scans: strings, numbers, booleans, null, RFC 3339
// timestamps, and lists and structs as JSON arrays and objects.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: duckdb 'SQL'")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "duckdb:", err)
		os.Exit(1)
	}
}

// column is one result column as printed.
type column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func run(ctx context.Context, query string) (err error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	defer func() { err = errors.Join(err, rows.Close()) }()
	types, err := rows.ColumnTypes()
	if err != nil {
		return fmt.Errorf("column types: %w", err)
	}
	cols := make([]column, len(types))
	for i, t := range types {
		cols[i] = column{Name: t.Name(), Type: t.DatabaseTypeName()}
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(map[string]any{"columns": cols}); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			row[c.Name] = vals[i]
		}
		if err := enc.Encode(map[string]any{"row": row}); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rows: %w", err)
	}
	return nil
}
