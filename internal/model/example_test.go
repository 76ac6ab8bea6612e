package model_test

import (
	"fmt"

	"github.com/sightline/sightline/internal/event"
	"github.com/sightline/sightline/internal/model"
)

func Example() {
	m, err := model.New(model.Config{Bits: 16})
	if err != nil {
		panic(err)
	}
	x := model.Context{User: event.User{Segment: "sports_fan", Device: "ios"}, Channel: "app", Hour: 20}
	sports := event.Item{ID: "match-highlights", Category: "sports"}
	cooking := event.Item{ID: "pasta-recipe", Category: "cooking"}

	// The event consumer learns: impressions are negatives, clicks on them flips.
	for range 50 {
		m.Learn(&x, sports, model.Negative)
		m.Learn(&x, sports, model.Flip)
		m.Learn(&x, cooking, model.Negative)
	}

	// The request path prepares the request once and scores every candidate.
	var p model.Prepared
	m.Prepare(&x, &p)
	out := make([]float64, 2)
	m.Score(&p, []event.Item{sports, cooking}, out)
	fmt.Printf("sports %.2f, cooking %.2f, version %s\n", out[0], out[1], m.Version())
	// Output: sports 0.82, cooking 0.10, version ftrl-v0.0
}

func ExampleSplit_Assign() {
	s, err := model.ParseSplit("ftrl=90,popularity=10")
	if err != nil {
		panic(err)
	}
	first, again := s.Assign("alice"), s.Assign("alice")
	fmt.Println(first, first == again)
	// Output: ftrl true
}
