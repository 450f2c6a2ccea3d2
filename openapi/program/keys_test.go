package program

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// TestKeysCoverEveryField: changing any field of a program element (every
// string, number and bool, nested in structs and slices) changes its key.
// A field added to an element type and forgotten by its key would let a
// compiler keep a stale element under an unchanged hash; this test fails
// first.
func TestKeysCoverEveryField(t *testing.T) {
	cases := []struct {
		name string
		v    any // a pointer to a sample with every field set
		key  func(any) Key
	}{
		{"Flow", &openapi.Flow{}, func(v any) Key { return FlowKey(v.(*openapi.Flow)) }},
		{"TunnelPort", &openapi.TunnelPort{}, func(v any) Key { return TunnelKey(v.(*openapi.TunnelPort)) }},
		{"ContainerPort", &openapi.ContainerPort{}, func(v any) Key { return ContainerKey(v.(*openapi.ContainerPort)) }},
		{"Group", &openapi.Group{}, func(v any) Key { return GroupKey(v.(*openapi.Group)) }},
		{"DNSRecord", &openapi.DNSRecord{}, func(v any) Key { return DNSKey(v.(*openapi.DNSRecord)) }},
		{"HealthProbe", &openapi.HealthProbe{}, func(v any) Key { return HealthKey(v.(*openapi.HealthProbe)) }},
		{"Gateway", &openapi.Gateway{}, func(v any) Key { return GatewayKey(v.(*openapi.Gateway)) }},
	}
	for _, c := range cases {
		n := 0
		fill(reflect.ValueOf(c.v).Elem(), &n)
		base := c.key(c.v)
		for _, path := range leaves(reflect.ValueOf(c.v).Elem(), c.name) {
			n := 1000
			fill(reflect.ValueOf(c.v).Elem(), new(int)) // back to the sample
			bump(reflect.ValueOf(c.v).Elem(), path.steps, &n)
			if c.key(c.v) == base {
				t.Errorf("%s: changing %s leaves its key unchanged", c.name, path.name)
			}
		}
	}
}

// leaf is one settable scalar of a sample: its name and how to reach it.
type leaf struct {
	name  string
	steps []int // field index, or -1 for "element 0 of a slice"
}

func leaves(v reflect.Value, name string) []leaf {
	switch v.Kind() {
	case reflect.Struct:
		var out []leaf
		for i := 0; i < v.NumField(); i++ {
			for _, l := range leaves(v.Field(i), name+"."+v.Type().Field(i).Name) {
				out = append(out, leaf{l.name, append([]int{i}, l.steps...)})
			}
		}
		return out
	case reflect.Slice:
		var out []leaf
		for _, l := range leaves(v.Index(0), name+"[0]") {
			out = append(out, leaf{l.name, append([]int{-1}, l.steps...)})
		}
		return out
	}
	return []leaf{{name: name}}
}

// fill gives every scalar of v a distinct non-zero value (slices get one
// element).
func fill(v reflect.Value, n *int) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(v.Field(i), n)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), n)
	default:
		set(v, n)
	}
}

func bump(v reflect.Value, steps []int, n *int) {
	for _, s := range steps {
		if s < 0 {
			v = v.Index(0)
		} else {
			v = v.Field(s)
		}
	}
	set(v, n)
}

func set(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprint("s", *n))
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*n))
	case reflect.Uint64, reflect.Uint32, reflect.Uint:
		v.SetUint(uint64(*n))
	case reflect.Bool:
		v.SetBool(!v.Bool())
	default:
		panic("unhandled kind " + v.Kind().String())
	}
}
