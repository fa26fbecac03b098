// Command upstream is the fast upstream of the load harness: it answers
// every request with 200 and {"ok":true}, after reading the whole request
// body so that connections are kept alive whatever the body size.
//
//	upstream -listen 127.0.0.1:0 -portfile /tmp/port
//
// The address it bound is written to -portfile (the port number only) once
// it is listening, so the harness can pick a free port with :0.
//
// With -hold it starts holding: every request waits (its connection open,
// no answer) until the harness releases them, which is how the drain
// scenarios store a backlog "while the upstream is down" without every
// event getting a failed attempt and a retry time. Control, answered
// without waiting and not counted:
//
//	POST /_bench/hold      hold from now on
//	POST /_bench/release   answer the held requests and every later one
//	GET  /_bench/count     requests answered so far (a decimal number)
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var okBody = []byte(`{"ok":true}`)

// gate holds requests while closed; release opens it.
type gate struct {
	mu   sync.Mutex
	open chan struct{} // closed when released
}

func newGate(hold bool) *gate {
	g := &gate{open: make(chan struct{})}
	if !hold {
		close(g.open)
	}
	return g
}

func (g *gate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default: // already holding
	}
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

var (
	requestGate *gate
	answered    atomic.Int64
)

func control(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_bench/hold":
		requestGate.hold()
	case "/_bench/release":
		requestGate.release()
	case "/_bench/count":
		_, _ = fmt.Fprintf(w, "%d\n", answered.Load())
		return
	default:
		http.NotFound(w, r)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func handle(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_bench/") {
		control(w, r)
		return
	}
	select {
	case <-requestGate.wait():
	case <-r.Context().Done():
		return
	}
	// Drain the body (bounded by what the client sends; the harness sends
	// at most a few MiB) so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(okBody))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
	answered.Add(1)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	portfile := flag.String("portfile", "", "file to write the bound port to")
	hold := flag.Bool("hold", false, "start holding requests until POST /_bench/release")
	flag.Parse()
	requestGate = newGate(*hold)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if *portfile != "" {
		tmp := *portfile + ".tmp"
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(port)+"\n"), 0o600); err != nil {
			log.Fatalf("portfile: %v", err)
		}
		if err := os.Rename(tmp, *portfile); err != nil {
			log.Fatalf("portfile: %v", err)
		}
	} else {
		fmt.Println(port)
	}

	srv := &http.Server{
		Handler:           http.HandlerFunc(handle),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("serve: %v", err)
	}
}
