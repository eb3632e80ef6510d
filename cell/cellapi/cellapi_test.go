package cellapi

import (
	"encoding/json"
	"testing"
)

// The JSON names are a contract with routers and control planes of other
// versions during a rolling deployment: renaming one breaks health checks.
func TestStatusWireNames(t *testing.T) {
	st := Status{Cell: "eu-west", Region: "europe-west1", State: "active", Healthy: true,
		Sessions: 12, Capacity: 50000, Version: "v1.0.0", Gateway: "127.0.0.1:4110"}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"cell":"eu-west","region":"europe-west1","state":"active","healthy":true,"sessions":12,"capacity":50000,"version":"v1.0.0","gateway":"127.0.0.1:4110"}`
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != st {
		t.Errorf("round trip: got %+v, want %+v", back, st)
	}
}
