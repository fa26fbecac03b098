// Command upstream is the fast upstream of the load harness: it answers
// every request with 200 and {"ok":true}, after reading the whole request
// body so that connections are kept alive whatever the body size.
//
//	upstream -listen 127.0.0.1:0 -portfile /tmp/port
//
// The address it bound is written to -portfile (the port number only) once
// it is listening, so the harness can pick a free port with :0.
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
	"syscall"
	"time"
)

var okBody = []byte(`{"ok":true}`)

func handle(w http.ResponseWriter, r *http.Request) {
	// Drain the body (bounded by what the client sends; the harness sends
	// at most a few MiB) so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(okBody))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	portfile := flag.String("portfile", "", "file to write the bound port to")
	flag.Parse()

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
