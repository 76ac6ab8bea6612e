package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sightline/sightline/client"
)

func Example() {
	// A stand-in for a Sightline server.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/recommendations":
			// A failed write is the client's error to report.
			_, _ = io.WriteString(w, `{"request_id":"4f2a9c","variant":"control","model_version":"ftrl-12",
				"fallback":null,"items":[{"item_id":"sku-42","score":0.31,"reason":"model"}]}`)
		case "/v1/events":
			w.WriteHeader(http.StatusAccepted)
			// A failed write is the client's error to report.
			_, _ = io.WriteString(w, `{"accepted":1,"duplicates":0,"rejected":[]}`)
		}
	}))
	defer srv.Close()

	c, err := client.New(srv.URL)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	rec, err := c.Recommend(ctx, client.RecommendRequest{
		UserID:  "user-1",
		Count:   1,
		Context: client.Context{Channel: "home"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, it := range rec.Items {
		fmt.Printf("%s %.2f %s\n", it.ItemID, it.Score, it.Reason)
	}
	// Report the click, joined to the decision by its request id.
	res, err := c.SendEvents(ctx, []client.Event{{
		EventID: "ev-1", Type: client.TypeClick, UserID: "user-1",
		ItemID: rec.Items[0].ItemID, RequestID: rec.RequestID,
	}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("accepted:", res.Accepted)
	// Output:
	// sku-42 0.31 model
	// accepted: 1
}

func ExampleWithRetry() {
	// A stand-in for a node at its limit: it refuses the first request.
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls++; calls == 1 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			// A failed write is the client's error to report.
			_, _ = io.WriteString(w, `{"type":"https://sightline.dev/problems/overloaded","title":"Too many requests","status":429,"detail":"busy"}`)
			return
		}
		fmt.Println("authorization:", r.Header.Get("Authorization"))
		// A failed write is the client's error to report.
		_, _ = io.WriteString(w, `{"request_id":"7c1e","variant":"control","model_version":"ftrl-12","fallback":null,"items":[]}`)
	}))
	defer srv.Close()

	c, err := client.New(srv.URL,
		client.WithAPIKey("slk_example"),
		client.WithRetry(client.RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond}))
	if err != nil {
		log.Fatal(err)
	}
	rec, err := c.Recommend(context.Background(), client.RecommendRequest{UserID: "user-1"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("request:", rec.RequestID, "after", calls, "attempts")
	// Output:
	// authorization: Bearer slk_example
	// request: 7c1e after 2 attempts
}
