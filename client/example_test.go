package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/sightline/sightline/client"
)

func Example() {
	// A stand-in for a Sightline server.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/recommendations":
			io.WriteString(w, `{"request_id":"4f2a9c","variant":"control","model_version":"ftrl-12",
				"fallback":null,"items":[{"item_id":"sku-42","score":0.31,"reason":"model"}]}`)
		case "/v1/events":
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"accepted":1,"duplicates":0,"rejected":[]}`)
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
