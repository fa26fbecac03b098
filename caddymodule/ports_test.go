package caddymodule_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// The test Caddy listens on ports free when the tests start, so that two
// runs, or a Caddy on the usual test ports, do not meet. Configs are
// written with the conventional ports (9080 for HTTP, 9443 for HTTPS, 2999
// for the admin API); withPorts puts this run's in their place.
var (
	gatewayPort = freePort()
	httpsPort   = freePort()
	adminPort   = freePort()
)

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// withPorts rewrites a test config's conventional ports to this run's.
func withPorts(config string) string {
	return strings.NewReplacer(
		"localhost:9080", fmt.Sprintf("localhost:%d", gatewayPort),
		"localhost:2999", fmt.Sprintf("localhost:%d", adminPort),
		"http_port 9080", fmt.Sprintf("http_port %d", gatewayPort),
		"https_port 9443", fmt.Sprintf("https_port %d", httpsPort),
	).Replace(config)
}

func gatewayURL() string { return fmt.Sprintf("http://localhost:%d", gatewayPort) }

func adminURL() string { return fmt.Sprintf("http://localhost:%d", adminPort) }

// newTester is a caddytest.Tester on this run's admin port. A config
// load opens an event store (files created and synced); under -race,
// beside other packages' tests on two cores, that has taken 7 s, past
// caddytest's default 5 s for a load.
func newTester(t *testing.T) *caddytest.Tester {
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{
		AdminPort: adminPort, TestRequestTimeout: 20 * time.Second, LoadRequestTimeout: 60 * time.Second,
	})
}
