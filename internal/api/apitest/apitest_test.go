package apitest_test

import (
	"testing"

	"github.com/sightline/sightline/internal/api/apitest"
)

func TestDefaultLoads(t *testing.T) {
	v, err := apitest.Default()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(v.Operations())
}
