package cniproto

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func serve(t *testing.T, answer func(net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			answer(c)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return sock
}

func TestRoundTrip(t *testing.T) {
	sock := serve(t, func(c net.Conn) {
		req, err := ReadRequest(c)
		if err != nil || req.Command != Add || req.Args["K8S_POD_NAME"] != "p" {
			_ = WriteResponse(c, Response{Error: &Error{Code: 6, Msg: "bad", Details: err.Error()}})
			return
		}
		_ = WriteResponse(c, Response{Result: &Result{Container: "p", Address: "10.0.0.2/24"}})
	})
	res, err := Call(context.Background(), sock, Request{Command: Add, Args: map[string]string{"K8S_POD_NAME": "p"}})
	if err != nil || res.Error != nil || res.Result.Address != "10.0.0.2/24" {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestCallFailures(t *testing.T) {
	if _, err := Call(context.Background(), filepath.Join(t.TempDir(), "none"), Request{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no server: %v", err)
	}
	hang := make(chan struct{})
	defer close(hang)
	sock := serve(t, func(net.Conn) { <-hang })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var ne net.Error
	if _, err := Call(ctx, sock, Request{}); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silent server: %v", err)
	}
	garbage := serve(t, func(c net.Conn) { _, _ = c.Write([]byte("{nope")) })
	if _, err := Call(context.Background(), garbage, Request{}); err == nil {
		t.Fatal("garbage answer accepted")
	}
}

func TestErrorText(t *testing.T) {
	if s := (&Error{Code: 11, Msg: "try again later"}).Error(); s != "try again later" {
		t.Fatal(s)
	}
	if s := (&Error{Code: 11, Msg: "a", Details: "b"}).Error(); s != "a: b" {
		t.Fatal(s)
	}
}
