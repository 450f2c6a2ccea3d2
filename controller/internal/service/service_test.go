package service

import (
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

func ctr(id, net, version string) openapi.Container {
	return openapi.Container{Meta: openapi.Meta{ID: id}, Name: "c" + id, Network: net, Host: "h1", IP: "10.0.0." + id,
		Labels: map[string]string{"app": "web", "version": version}}
}

func TestBackendsPlain(t *testing.T) {
	ctrs := []openapi.Container{ctr("3", "blue", "v1"), ctr("1", "blue", "v1"), ctr("2", "red", "v1"),
		{Meta: openapi.Meta{ID: "4"}, Network: "blue", Labels: map[string]string{"app": "web"}}} // no IP, no host
	bs, err := Backends(&openapi.Service{Network: "blue", Selector: "app=web"}, ctrs)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Container.ID != "1" || bs[1].Container.ID != "3" || bs[0].Weight != DefaultWeight {
		t.Fatalf("got %+v", bs)
	}
}

func TestBackendsWeights(t *testing.T) {
	ctrs := []openapi.Container{ctr("1", "blue", "v1"), ctr("2", "blue", "v1"), ctr("3", "blue", "v1"), ctr("4", "blue", "v2"), ctr("5", "blue", "v3")}
	svc := &openapi.Service{Network: "blue", Selector: "app=web", Weights: []openapi.ServiceWeight{
		{Selector: "version=v1", Weight: 90}, {Selector: "version=v2", Weight: 10}, {Selector: "version=v9", Weight: 50}}}
	bs, err := Backends(svc, ctrs)
	if err != nil {
		t.Fatal(err)
	}
	sum := map[string]int{}
	all := 0
	for _, b := range bs {
		sum[b.Container.Labels["version"]] += b.Weight
		all += b.Weight
	}
	// v9 has no backends: its share goes to the others; v3 matches no entry.
	if sum["v3"] != 0 || all == 0 {
		t.Fatalf("weights %+v", sum)
	}
	if share := float64(sum["v2"]) / float64(all); share < 0.099 || share > 0.101 {
		t.Fatalf("v2 share %.4f, want 0.10 (%+v)", share, sum)
	}
	if Usable(bs, func(id string) bool { return id != "1" })[0].Container.ID != "2" {
		t.Fatal("usable kept an unhealthy backend")
	}
	if len(Usable(bs, nil)) != 4 {
		t.Fatal("usable kept a weight-0 backend")
	}
}

func TestBackendsBadSelector(t *testing.T) {
	if _, err := Backends(&openapi.Service{Selector: "app in (("}, nil); err == nil {
		t.Fatal("want an error")
	}
	if _, err := Backends(&openapi.Service{Selector: "app=web", Weights: []openapi.ServiceWeight{{Selector: "a in ((", Weight: 1}}}, nil); err == nil {
		t.Fatal("want an error")
	}
}
